//! `DATABASE_URL` TLS options against a real PostgreSQL server with TLS.
//!
//! The test starts its own throw-away PostgreSQL 15 cluster (in a tempdir, on a
//! free port on 127.0.0.1) whose certificate is signed by a CA generated here,
//! and whose pg_hba.conf only accepts `hostssl` + SCRAM. The server is stopped
//! and the directory removed at the end, also when the test fails.
//!
//! The binaries are taken from `$PG_BIN`, else /usr/lib/postgresql/15/bin; if
//! they are missing the test fails (it does not skip).

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use vibee_sessions::db::DatabaseTarget;

const PASSWORD: &str = "Vibee-test-pw-7f3a9c";
const WRONG_PASSWORD: &str = "Wrong-test-pw-1b2c3d";
const SERVER_USER: &str = "postgres";

struct Certs {
    ca_pem: String,
    other_ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn make_certs() -> Certs {
    let ca = make_ca("vibee-sessions test CA");
    let other_ca = make_ca("unrelated test CA");
    // ECDSA P-256, signed with ecdsa-with-SHA256 (channel binding needs a hash).
    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &*ca).unwrap();
    Certs {
        ca_pem: ca.pem(),
        other_ca_pem: other_ca.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run `id -u`");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A throw-away PostgreSQL cluster; stopped (and its directory removed) on drop.
struct TestServer {
    bin: PathBuf,
    as_postgres: bool,
    data: PathBuf,
    port: u16,
    started: bool,
    // Dropped after `drop` below has stopped the server.
    dir: tempfile::TempDir,
}

impl TestServer {
    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SERVER_USER, "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        if !out.status.success() {
            panic!(
                "{what} failed ({}):\n{}{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default(),
            );
        }
        out
    }

    fn start(certs: &Certs) -> Self {
        let bin = std::env::var_os("PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        for program in ["initdb", "pg_ctl", "postgres"] {
            assert!(
                bin.join(program).is_file(),
                "PostgreSQL server binaries not found: {} is missing. Install PostgreSQL 15 \
                 (apt-get install postgresql-15) or point PG_BIN at its bin directory.",
                bin.join(program).display()
            );
        }
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("vibee-tls-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = TestServer {
            bin,
            as_postgres,
            data,
            port,
            started: false,
            dir,
        };
        let root = server.dir.path().to_owned();

        fs::write(root.join("pwfile"), format!("{PASSWORD}\n")).unwrap();
        fs::write(root.join("server.crt"), &certs.server_cert_pem).unwrap();
        fs::write(root.join("server.key"), &certs.server_key_pem).unwrap();
        fs::set_permissions(root.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to `postgres`.
            server.run(
                "chown",
                Command::new("chown").args(["-R", SERVER_USER]).arg(&root),
            );
        }

        server.run(
            "initdb",
            server
                .pg("initdb")
                .arg("-D")
                .arg(&server.data)
                .args(["-U", "postgres", "--auth-host=scram-sha-256"])
                .args([
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ])
                .args(["--no-sync", "--no-instructions"])
                .arg(format!("--pwfile={}", root.join("pwfile").display())),
        );

        let mut conf = String::new();
        writeln!(conf, "listen_addresses = '127.0.0.1'").unwrap();
        writeln!(conf, "port = {port}").unwrap();
        writeln!(conf, "unix_socket_directories = '{}'", root.display()).unwrap();
        writeln!(conf, "ssl = on").unwrap();
        writeln!(
            conf,
            "ssl_cert_file = '{}'",
            root.join("server.crt").display()
        )
        .unwrap();
        writeln!(
            conf,
            "ssl_key_file = '{}'",
            root.join("server.key").display()
        )
        .unwrap();
        writeln!(conf, "fsync = off").unwrap();
        writeln!(conf, "max_connections = 20").unwrap();
        let conf_path = server.data.join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        fs::write(&conf_path, existing).unwrap();
        // TLS + SCRAM only; no line matches a plaintext TCP connection.
        fs::write(
            server.data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();

        server.started = true;
        server.run(
            "pg_ctl start",
            server
                .pg("pg_ctl")
                .arg("-D")
                .arg(&server.data)
                .arg("-l")
                .arg(root.join("server.log"))
                .args(["-w", "-t", "60", "start"]),
        );
        server
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.started {
            let result = self
                .pg("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            match result {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "pg_ctl stop failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("cannot run pg_ctl stop: {e}"),
            }
        }
    }
}

/// Connects through the public API and returns whether the session uses TLS.
async fn connect_ssl(url: &str) -> Result<bool, String> {
    let target = DatabaseTarget::parse(url).map_err(|e| e.to_string())?;
    let client = target.connect_client().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| format!("query failed: {e}"))?;
    Ok(row.get(0))
}

#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    async fn check(&mut self, name: &str, f: impl Future<Output = Result<(), String>>) {
        let started = Instant::now();
        let result = match tokio::time::timeout(Duration::from_secs(20), f).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_owned()),
        };
        match result {
            Ok(()) => {
                self.passed += 1;
                eprintln!("ok   {name} ({:?})", started.elapsed());
            }
            Err(e) => {
                eprintln!("FAIL {name}: {e}");
                self.failures.push(format!("{name}: {e}"));
            }
        }
    }
}

async fn expect_tls(url: String) -> Result<(), String> {
    match connect_ssl(&url).await? {
        true => Ok(()),
        false => Err("connected, but pg_stat_ssl.ssl is false".to_owned()),
    }
}

/// The connection must fail; its message must contain every one of `needles`
/// (case-insensitive) and neither password.
async fn expect_refused(url: String, needles: &[&str]) -> Result<(), String> {
    let err = match connect_ssl(&url).await {
        Ok(ssl) => return Err(format!("connected (ssl = {ssl}) but should have failed")),
        Err(e) => e,
    };
    for secret in [PASSWORD, WRONG_PASSWORD] {
        if err.contains(secret) {
            return Err(format!("error message contains a password: {err}"));
        }
    }
    let lower = err.to_lowercase();
    for needle in needles {
        if !lower.contains(&needle.to_lowercase()) {
            return Err(format!("error does not mention {needle:?}: {err}"));
        }
    }
    eprintln!("     refused as expected: {err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn database_url_tls_options_against_a_real_server() {
    let started = Instant::now();
    let certs = make_certs();
    let server = TestServer::start(&certs);
    let dir = server.dir.path();
    let port = server.port;

    let ca = dir.join("ca.pem");
    // Several certificates in one file: the unrelated CA first, then ours.
    let ca_bundle = dir.join("bundle.pem");
    let wrong_ca = dir.join("wrong-ca.pem");
    fs::write(&ca, &certs.ca_pem).unwrap();
    fs::write(
        &ca_bundle,
        format!("{}{}", certs.other_ca_pem, certs.ca_pem),
    )
    .unwrap();
    fs::write(&wrong_ca, &certs.other_ca_pem).unwrap();
    // libpq's default root certificate is ~/.postgresql/root.crt: point HOME at
    // an empty directory so the machine's own file cannot interfere.
    let home = dir.join("home");
    fs::create_dir(&home).unwrap();
    // SAFETY: set before any connection is made; nothing else in this test
    // binary reads the environment concurrently.
    unsafe { std::env::set_var("HOME", &home) };

    // URL form: the path is percent-encoded ('/' as %2F).
    let enc = |p: &Path| p.display().to_string().replace('/', "%2F");
    let url = |host: &str, query: &str| {
        format!("postgres://postgres:{PASSWORD}@{host}:{port}/postgres?{query}")
    };
    let kv = |rest: &str| {
        format!("port={port} user=postgres password={PASSWORD} dbname=postgres {rest}")
    };

    let mut c = Checks::default();

    c.check(
        "sslmode=require connects with TLS",
        expect_tls(url("127.0.0.1", "sslmode=require")),
    )
    .await;
    c.check(
        "no sslmode (prefer) uses TLS when offered",
        expect_tls(format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
        )),
    )
    .await;
    c.check(
        "sslmode=verify-full, right CA, host localhost",
        expect_tls(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", enc(&ca)),
        )),
    )
    .await;
    c.check(
        "sslmode=verify-full, CA bundle with several certificates (key=value form)",
        expect_tls(kv(&format!(
            "host=localhost sslmode=verify-full sslrootcert='{}'",
            ca_bundle.display()
        ))),
    )
    .await;
    c.check(
        "sslmode=verify-full, IP-address host 127.0.0.1 (IP SAN)",
        expect_tls(url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", enc(&ca)),
        )),
    )
    .await;
    c.check(
        "sslmode=verify-full, wrong CA: refused, names the certificate problem",
        expect_refused(
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", enc(&wrong_ca)),
            ),
            &[
                "certificate verification failed",
                "UnknownIssuer",
                "verify-full",
            ],
        ),
    )
    .await;
    c.check(
        "sslmode=verify-ca, right CA, host 127.0.0.1",
        expect_tls(url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", enc(&ca)),
        )),
    )
    .await;
    c.check(
        "sslmode=verify-ca, wrong CA: refused",
        expect_refused(
            url(
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={}", enc(&wrong_ca)),
            ),
            &["certificate verification failed", "UnknownIssuer"],
        ),
    )
    .await;
    // host is a name not in the SANs, hostaddr routes the TCP connection.
    c.check(
        "sslmode=verify-full, host name not in the certificate: refused",
        expect_refused(
            kv(&format!(
                "host=not-in-cert.invalid hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
                ca.display()
            )),
            &["certificate verification failed", "not valid for name"],
        ),
    )
    .await;
    c.check(
        "sslmode=verify-ca, host name not in the certificate: connects",
        expect_tls(kv(&format!(
            "host=not-in-cert.invalid hostaddr=127.0.0.1 sslmode=verify-ca sslrootcert={}",
            ca.display()
        ))),
    )
    .await;
    c.check(
        "sslmode=verify-full, IP host not in the certificate (::1): refused",
        expect_refused(
            kv(&format!(
                "host=::1 hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
                ca.display()
            )),
            &["not valid for name \"::1\""],
        ),
    )
    .await;
    // Several hosts: each is checked against its own name; a refused host
    // is passed over for the next and named in the message.
    c.check(
        "sslmode=verify-full, two hosts: the first's name fails, the second connects",
        expect_tls(kv(&format!(
            "host=not-in-cert.invalid,localhost hostaddr=127.0.0.1,127.0.0.1 \
             sslmode=verify-full sslrootcert={}",
            ca.display()
        ))),
    )
    .await;
    c.check(
        "sslmode=verify-full, two hosts both not in the certificate: both named",
        expect_refused(
            kv(&format!(
                "host=not-in-cert.invalid,other.invalid hostaddr=127.0.0.1,127.0.0.1 \
                 sslmode=verify-full sslrootcert={}",
                ca.display()
            )),
            &[
                "certificate verification failed",
                &format!("not-in-cert.invalid:{port} (hostaddr 127.0.0.1)"),
                &format!("other.invalid:{port} (hostaddr 127.0.0.1)"),
                "not valid for name \"other.invalid\"",
            ],
        ),
    )
    .await;
    c.check(
        "URL form, two hosts, target_session_attrs=read-write: the primary is found",
        expect_tls(url(
            &format!("not-in-cert.invalid:{port},localhost"),
            &format!(
                "sslmode=verify-full&sslrootcert={}&target_session_attrs=read-write",
                enc(&ca)
            ),
        )),
    )
    .await;
    c.check(
        "sslmode=require + right sslrootcert verifies the chain",
        expect_tls(url(
            "not-in-cert.invalid",
            &format!(
                "hostaddr=127.0.0.1&sslmode=require&sslrootcert={}",
                enc(&ca)
            ),
        )),
    )
    .await;
    c.check(
        "sslmode=require + wrong sslrootcert: refused (behaves as verify-ca)",
        expect_refused(
            url(
                "localhost",
                &format!("sslmode=require&sslrootcert={}", enc(&wrong_ca)),
            ),
            &[
                "certificate verification failed",
                "UnknownIssuer",
                "sslmode=require",
            ],
        ),
    )
    .await;
    c.check(
        "sslmode=verify-full without sslrootcert nor ~/.postgresql/root.crt: clear error",
        expect_refused(
            url("localhost", "sslmode=verify-full"),
            &["sslrootcert", "verify-full"],
        ),
    )
    .await;
    c.check(
        "sslmode=verify-full uses ~/.postgresql/root.crt by default",
        async {
            fs::create_dir_all(home.join(".postgresql")).unwrap();
            fs::write(home.join(".postgresql/root.crt"), &certs.ca_pem).unwrap();
            let result = expect_tls(url("localhost", "sslmode=verify-full")).await;
            fs::remove_dir_all(home.join(".postgresql")).unwrap();
            result
        },
    )
    .await;
    c.check(
        "channel_binding=require with sslmode=require connects",
        expect_tls(url("localhost", "sslmode=require&channel_binding=require")),
    )
    .await;
    c.check(
        "sslmode=disable: refused by pg_hba.conf, no password in the message",
        expect_refused(
            url("127.0.0.1", "sslmode=disable"),
            &["no pg_hba.conf entry", "no encryption"],
        ),
    )
    .await;
    c.check(
        "wrong password: refused, no password in the message",
        expect_refused(
            format!(
                "postgres://postgres:{WRONG_PASSWORD}@127.0.0.1:{port}/postgres?sslmode=require"
            ),
            &["password authentication failed"],
        ),
    )
    .await;

    drop(server);
    eprintln!(
        "{} checks passed, {} failed, {:?} in all (server included)",
        c.passed,
        c.failures.len(),
        started.elapsed()
    );
    assert!(
        c.failures.is_empty(),
        "{} TLS check(s) failed:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
}
