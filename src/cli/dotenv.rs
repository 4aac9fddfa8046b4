//! `KEY=VALUE` input for secrets files and legacy `.env` files, parsed
//! literally by `crate::envfile` (no `${VAR}` expansion). Every value is
//! treated as a secret: errors name the line and the variable, never what the
//! line holds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::CliError;
use crate::crypto::private_file::{self, Rules};
use crate::envfile;

/// The variables of one input, by name; a later definition replaces an earlier one.
pub struct Vars {
    source: String,
    vars: BTreeMap<String, SecretString>,
}

impl Vars {
    /// Where the variables came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.vars.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// The process environment, filtered to `names`.
    pub fn from_process_env(names: &[&str]) -> Self {
        let vars = names
            .iter()
            .filter_map(|n| {
                std::env::var(n)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| ((*n).to_owned(), SecretString::from(v)))
            })
            .collect();
        Self {
            source: "the environment".to_owned(),
            vars,
        }
    }

    /// A file of KEY=VALUE lines, opened once and checked on the descriptor
    /// (`rules`: see `crypto::private_file`).
    pub fn from_file(path: &Path, what: &str, rules: Rules) -> Result<Self, CliError> {
        let bytes = private_file::read(path, what, rules)
            .map_err(|e| CliError::new(CliError::CONFIG, e.to_string()))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    pub fn from_stdin() -> Result<Self, CliError> {
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
        Self::parse(&bytes, "standard input")
    }

    /// Literal KEY=VALUE lines (`crate::envfile`): nothing is expanded.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, CliError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| CliError::new(CliError::DATA, format!("{source} is not UTF-8 text")))?;
        let pairs = envfile::parse(text)
            .map_err(|e| CliError::new(CliError::DATA, format!("{source}: {e}")))?;
        let vars = pairs
            .into_iter()
            .map(|(name, value)| (name, SecretString::from(value.as_str())))
            .collect();
        Ok(Self {
            source: source.to_owned(),
            vars,
        })
    }
}
