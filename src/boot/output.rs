//! `--format env` and `--format json`.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::TenantConfig;

/// `value` as one single-quoted shell word: nothing inside single quotes is
/// special but the quote itself, which becomes `'\''`.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// `export NAME='value'` lines, safe to `eval` or `source` whatever the values hold.
pub fn write_env(out: &mut dyn Write, tenant: &TenantConfig) -> io::Result<()> {
    let mut text = Zeroizing::new(String::new());
    for (name, value) in tenant.env_vars() {
        let value = Zeroizing::new(value);
        let quoted = Zeroizing::new(shell_quote(&value));
        text.push_str("export ");
        text.push_str(name);
        text.push('=');
        text.push_str(&quoted);
        text.push('\n');
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Bytes gathered before a write: stdout is line-buffered, which made
/// every tenant (two newlines each) cost two system calls.
const WRITE_CHUNK: usize = 64 * 1024;

/// A JSON array written one tenant at a time, so ten thousand tenants are
/// never all in memory at once (at most `WRITE_CHUNK` bytes of them, in a
/// buffer wiped after each write). Nothing is written until the first
/// tenant.
pub struct JsonArray<W: Write> {
    out: W,
    buf: Zeroizing<Vec<u8>>,
    count: usize,
}

impl<W: Write> JsonArray<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Zeroizing::new(Vec::with_capacity(WRITE_CHUNK + 4096)),
            count: 0,
        }
    }

    pub fn push(&mut self, tenant: &TenantConfig) -> io::Result<()> {
        self.buf
            .extend_from_slice(if self.count == 0 { b"[\n" } else { b",\n" });
        serde_json::to_writer(&mut *self.buf, &tenant.to_json())?;
        self.count += 1;
        if self.buf.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        let written = self.out.write_all(&self.buf);
        // Wiped whether or not the write went through.
        zeroize::Zeroize::zeroize(&mut *self.buf);
        written
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Closes the array (an empty one is `[]`) and hands back the writer.
    pub fn finish(mut self) -> io::Result<(W, usize)> {
        self.buf
            .extend_from_slice(if self.count == 0 { b"[]\n" } else { b"\n]\n" });
        self.write_out()?;
        self.out.flush()?;
        Ok((self.out, self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(x)\n`y`"), "'$(x)\n`y`'");
    }
}
