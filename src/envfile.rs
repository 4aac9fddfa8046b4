//! `KEY=VALUE` files (a tenant's legacy `.env`, `--secrets-file`, the
//! working directory's `.env`), read literally: nothing is ever expanded from
//! the environment of the process reading them. A tenant's file that says
//! `TELEGRAM_USERNAME="${MASTER_KEY}"` must not put the operator's master key
//! into a plaintext column.
//!
//! The rules (docs/CONFIGURATION.md, "KEY=VALUE files"), chosen to mean what
//! a shell would mean or to refuse:
//! - blank lines and lines starting with `#` are skipped; `export ` before a
//!   name is allowed and ignored;
//! - a name is letters, digits, `_` and `.`, not starting with a digit,
//!   followed by `=` (spaces around it are allowed);
//! - `'single quoted'`: every character as written, `$` included;
//! - `"double quoted"`: `\\`, `\"`, `\$`, `` \` ``, `\n`, `\t` and `\r` are
//!   escapes; any other backslash is an error;
//! - unquoted: the rest of the line, trimmed, up to a ` #` comment; quotes
//!   and backslashes inside are errors (quote the value instead);
//! - `$` and `` ` `` outside single quotes are refused by name ("not
//!   expanded"): a shell would substitute there, and we never do;
//! - after a closing quote only spaces and a `#` comment may follow; a value
//!   ends at its line (write `\n` inside double quotes for a newline);
//! - a later definition of a name replaces an earlier one.
//!
//! Every value is treated as a secret: errors name the line and the
//! variable, never what the line holds.

use std::fmt;

use zeroize::Zeroizing;

/// Why a file was refused: its line (1-based), the variable when known, and
/// the rule it broke. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub name: Option<String>,
    pub problem: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(n) = &self.name {
            write!(f, " (variable {n})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ParseError {}

const EXPANSION: &str = "`$` and backquotes are not expanded here (nothing is substituted from \
     the environment); put the value in single quotes to keep them as written, \
     or write the value out";

/// The `(name, value)` pairs of `text`, in file order.
pub fn parse(text: &str) -> Result<Vec<(String, Zeroizing<String>)>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = raw.trim();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let body = body
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(body);
        let fail = |name: Option<&str>, problem| ParseError {
            line,
            name: name.map(str::to_owned),
            problem,
        };
        let Some((name, rest)) = body.split_once('=') else {
            return Err(fail(None, "expected KEY=VALUE"));
        };
        let name = name.trim_end();
        if !is_name(name) {
            return Err(fail(
                None,
                "the name before `=` must be letters, digits, `_` or `.`, not starting with a digit",
            ));
        }
        let value = value(rest.trim_start()).map_err(|p| fail(Some(name), p))?;
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn value(rest: &str) -> Result<Zeroizing<String>, &'static str> {
    let mut out = Zeroizing::new(String::with_capacity(rest.len()));
    let tail = match rest.chars().next() {
        Some('\'') => {
            let end = rest[1..]
                .find('\'')
                .ok_or("a single-quoted value has no closing quote on its line")?;
            out.push_str(&rest[1..1 + end]);
            &rest[end + 2..]
        }
        Some('"') => {
            let mut chars = rest[1..].char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("a double-quoted value has no closing quote on its line"),
                    Some((i, '"')) => break i + 2,
                    Some((_, '$' | '`')) => return Err(EXPANSION),
                    Some((_, '\\')) => out.push(match chars.next() {
                        Some((_, c @ ('\\' | '"' | '$' | '`'))) => c,
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, 'r')) => '\r',
                        _ => {
                            return Err(
                                "inside double quotes a backslash may only escape \\ \" $ ` n t r",
                            );
                        }
                    }),
                    Some((_, c)) => out.push(c),
                }
            };
            &rest[end..]
        }
        _ => {
            let unquoted = match rest.find(" #").or_else(|| rest.find("\t#")) {
                Some(i) => &rest[..i],
                None => rest,
            }
            .trim_end();
            if unquoted.contains(['$', '`']) {
                return Err(EXPANSION);
            }
            if unquoted.contains(['\'', '"', '\\']) {
                return Err("an unquoted value may not hold quotes or backslashes; quote it");
            }
            out.push_str(unquoted);
            ""
        }
    };
    let tail = tail.trim_start();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return Err("only a `#` comment may follow a quoted value");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<String, ParseError> {
        parse(text).map(|v| v.into_iter().next().unwrap().1.to_string())
    }

    #[test]
    fn values_are_literal() {
        assert_eq!(one("A=plain value # note").unwrap(), "plain value");
        assert_eq!(one("export A = 'x ${B} $C `d`'").unwrap(), "x ${B} $C `d`");
        assert_eq!(one(r#"A="a\"b\\c\$d\nz" # c"#).unwrap(), "a\"b\\c$d\nz");
        assert_eq!(one("A=").unwrap(), "");
        assert_eq!(one("A=a#b").unwrap(), "a#b");
        assert_eq!(parse("# c\n\n  \nB=1\nB=2").unwrap().len(), 2);
    }

    #[test]
    fn expansion_and_junk_are_refused_by_line_and_name() {
        for bad in [
            "A=${MASTER_KEY}",
            "A=$X",
            "A=\"${X}\"",
            "A=`id`",
            "A=\"`id`\"",
        ] {
            let e = one(&format!("\n{bad}")).unwrap_err();
            assert_eq!((e.line, e.name.as_deref()), (2, Some("A")), "{bad}");
            assert!(e.to_string().contains("not expanded"), "{bad}");
        }
        for bad in [
            "A='x",
            "A=\"x",
            "A=\"\\q\"",
            "A='x' y",
            "A=a\"b",
            "1A=x",
            "A x",
        ] {
            assert_eq!(one(bad).unwrap_err().line, 1, "{bad}");
        }
    }
}
