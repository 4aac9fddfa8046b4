//! `KEY=VALUE` input (dotenv syntax) for secrets files and legacy `.env`
//! files. Every value is treated as a secret: errors name the line and the
//! variable, never what the line holds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::CliError;

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

    pub fn from_file(path: &Path) -> Result<Self, CliError> {
        let bytes = std::fs::read(path)
            .map(Zeroizing::new)
            .map_err(|e| CliError::failure(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    pub fn from_stdin() -> Result<Self, CliError> {
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
        Self::parse(&bytes, "standard input")
    }

    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, CliError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| CliError::new(CliError::DATA, format!("{source} is not UTF-8 text")))?;
        let mut vars = BTreeMap::new();
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            match item {
                Ok((name, value)) => {
                    vars.insert(name, SecretString::from(value));
                }
                Err(e) => return Err(parse_error(text, source, e)),
            }
        }
        Ok(Self {
            source: source.to_owned(),
            vars,
        })
    }
}

fn parse_error(text: &str, source: &str, e: dotenvy::Error) -> CliError {
    let what = match e {
        // The parser hands back the rest of the input from the bad line on:
        // find where that is instead of quoting it (it may hold a secret).
        dotenvy::Error::LineParse(rest, _) => {
            let at = text.find(rest.as_str()).unwrap_or(0);
            let line = text[..at].matches('\n').count() + 1;
            let name = rest
                .trim_start()
                .trim_start_matches("export ")
                .split(['=', '\n'])
                .next()
                .map(str::trim)
                .filter(|n| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .map(|n| format!(" (variable {n})"))
                .unwrap_or_default();
            format!("line {line}{name} is not valid KEY=VALUE syntax")
        }
        dotenvy::Error::EnvVar(_) => "a ${...} substitution failed".to_owned(),
        dotenvy::Error::Io(e) => e.to_string(),
        _ => "it could not be parsed".to_owned(),
    };
    CliError::new(CliError::DATA, format!("{source}: {what}"))
}
