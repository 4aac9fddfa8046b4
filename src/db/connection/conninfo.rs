//! Taking libpq's TLS options (`sslmode`, `sslrootcert`) out of a
//! connection string, URL or `key=value` form, which tokio-postgres would
//! refuse or ignore; and checking the libpq options tokio-postgres knows only
//! in part (`target_session_attrs`), so the refusal says what to use.

use std::borrow::Cow;

use super::ConnectError;

/// The TLS options taken out of the connection string.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TlsOptions {
    pub(super) sslmode: Option<String>,
    pub(super) sslrootcert: Option<String>,
}

impl TlsOptions {
    fn is_ours(key: &str) -> bool {
        (key.starts_with("ssl") && key != "sslnegotiation") || key == "target_session_attrs"
    }

    /// Records `key=value` if it is ours; `Ok(false)` means "leave it to tokio-postgres".
    fn take(&mut self, key: &str, value: String) -> Result<bool, ConnectError> {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(ConnectError::message(format!(
                    "DATABASE_URL: option {key} is not supported (no client certificates \
                     or certificate revocation lists)"
                )));
            }
            "target_session_attrs" => {
                check_target_session_attrs(&value)?;
                return Ok(false);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// libpq's values that tokio-postgres has no equivalent for are refused by
/// name, with what to use instead (tokio-postgres would only say "invalid value").
fn check_target_session_attrs(value: &str) -> Result<(), ConnectError> {
    match value {
        "any" | "read-write" | "read-only" => Ok(()),
        "primary" | "standby" | "prefer-standby" => Err(ConnectError::message(format!(
            "DATABASE_URL: target_session_attrs={value} is not supported (supported: any, \
             read-write, read-only); to follow a promoted standby, list every server in host= \
             and set target_session_attrs=read-write"
        ))),
        other => Err(ConnectError::message(format!(
            "DATABASE_URL: invalid target_session_attrs \"{other}\" (expected any, read-write \
             or read-only)"
        ))),
    }
}

/// Splits `sslmode` and `sslrootcert` (and refuses unsupported `ssl*` options)
/// off a connection string in URL or `key=value` form; returns the rest,
/// which tokio-postgres can parse. Later occurrences win, as in tokio-postgres.
pub(super) fn split_tls_options(s: &str) -> Result<(String, TlsOptions), ConnectError> {
    let mut options = TlsOptions::default();
    let prefix = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| s.starts_with(p));
    let Some(prefix) = prefix else {
        return Ok((split_key_value(s, &mut options)?, options));
    };

    // As tokio-postgres' URL parser: user info ends at the first '@', the
    // query starts at the first '?' after it.
    let after_prefix = &s[prefix.len()..];
    let creds_end = after_prefix.find('@').map_or(0, |i| i + 1);
    let Some(q) = after_prefix[creds_end..].find('?') else {
        return Ok((s.to_owned(), options));
    };
    let query_start = prefix.len() + creds_end + q + 1;

    let mut kept = Vec::new();
    for param in s[query_start..].split('&') {
        let taken = match param.split_once('=') {
            Some((key, value)) => {
                let key = percent_decode(key, "a parameter name")?;
                // Only our values are decoded here; the rest is tokio-postgres' business.
                if TlsOptions::is_ours(&key) {
                    let value = percent_decode(value, &key)?.into_owned();
                    options.take(&key, value)?
                } else {
                    false
                }
            }
            None => false,
        };
        if !taken {
            kept.push(param);
        }
    }

    let mut rest = s[..query_start - 1].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, options))
}

fn percent_decode<'a>(s: &'a str, what: &str) -> Result<Cow<'a, str>, ConnectError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| {
            ConnectError::message(format!(
                "DATABASE_URL: {what} is not valid UTF-8 once percent-decoded"
            ))
        })
}

/// The `key=value` form: removes our parameters, keeps everything else
/// byte for byte. A string this tokenizer cannot read is returned as is, for
/// tokio-postgres to report.
fn split_key_value(s: &str, options: &mut TlsOptions) -> Result<String, ConnectError> {
    let Some(params) = tokenize_key_value(s) else {
        return Ok(s.to_owned());
    };
    let mut rest = String::with_capacity(s.len());
    let mut copied_to = 0;
    for (key, value, span) in params {
        if options.take(key, value)? {
            rest.push_str(&s[copied_to..span.start]);
            copied_to = span.end;
        }
    }
    rest.push_str(&s[copied_to..]);
    Ok(rest)
}

/// `(key, unescaped value, byte span of the whole parameter)`, with the
/// grammar of tokio-postgres' (and libpq's) `key=value` parser.
fn tokenize_key_value(s: &str) -> Option<Vec<(&str, String, std::ops::Range<usize>)>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while let Some(c) = s[i..].chars().next()
            && c.is_whitespace()
        {
            i += c.len_utf8();
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i == s.len() {
            return Some(out);
        }
        let start = i;
        while let Some(c) = s[i..].chars().next()
            && !c.is_whitespace()
            && c != '='
        {
            i += c.len_utf8();
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if bytes.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(i + 1);
        let mut value = String::new();
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        loop {
            let c = s[i..].chars().next();
            match c {
                None if quoted => return None,
                None => break,
                Some('\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => {
                    i += 1;
                    if let Some(c2) = s[i..].chars().next() {
                        value.push(c2);
                        i += c2.len_utf8();
                    }
                }
                Some(c) => {
                    value.push(c);
                    i += c.len_utf8();
                }
            }
        }
        if !quoted && value.is_empty() {
            return None;
        }
        out.push((key, value, start..i));
    }
}
