use super::conninfo::TlsOptions;
use super::*;

fn split(s: &str) -> (String, TlsOptions) {
    split_tls_options(s).unwrap()
}

fn opts(mode: Option<&str>, root: Option<&str>) -> TlsOptions {
    TlsOptions {
        sslmode: mode.map(str::to_owned),
        sslrootcert: root.map(str::to_owned),
    }
}

#[test]
fn url_options_are_taken_out_and_decoded() {
    let (rest, o) = split(
        "postgres://u:p%3Fw@h:5433/db?sslmode=verify-full&application_name=x\
         &sslrootcert=%2Ftmp%2Fca%20dir%2Fca.pem",
    );
    assert_eq!(rest, "postgres://u:p%3Fw@h:5433/db?application_name=x");
    assert_eq!(o, opts(Some("verify-full"), Some("/tmp/ca dir/ca.pem")));

    let (rest, o) = split("postgresql://h/db?sslmode=require");
    assert_eq!(rest, "postgresql://h/db");
    assert_eq!(o, opts(Some("require"), None));

    let (rest, o) = split("postgres://u:pa?ss@h/db");
    assert_eq!(rest, "postgres://u:pa?ss@h/db");
    assert_eq!(o, TlsOptions::default());

    let (rest, o) = split("postgres://h/db?sslmode=disable&sslmode=verify-ca");
    assert_eq!(rest, "postgres://h/db");
    assert_eq!(o, opts(Some("verify-ca"), None));
}

#[test]
fn key_value_options_are_taken_out() {
    let (rest, o) =
        split("host=h  sslmode = verify-ca password='a b\\'c' sslrootcert='/x y/ca.pem' dbname=d");
    assert_eq!(rest, "host=h   password='a b\\'c'  dbname=d");
    assert_eq!(o, opts(Some("verify-ca"), Some("/x y/ca.pem")));
    let config: tokio_postgres::Config = rest.parse().unwrap();
    assert_eq!(config.get_password(), Some(&b"a b'c"[..]));

    let (rest, o) = split("sslrootcert=/a\\ b");
    assert_eq!(rest, "");
    assert_eq!(o, opts(None, Some("/a b")));
}

#[test]
fn unsupported_and_invalid_options_are_refused_clearly() {
    let err = DatabaseTarget::parse("postgres://h/db?sslcert=/c.pem")
        .err()
        .unwrap();
    assert!(err.to_string().contains("sslcert"), "{err}");
    let err = DatabaseTarget::parse("host=h sslmode=verify")
        .err()
        .unwrap();
    assert!(err.to_string().contains("invalid sslmode"), "{err}");
    let err = DatabaseTarget::parse("host=h sslmode=require sslrootcert=system")
        .err()
        .unwrap();
    assert!(err.to_string().contains("sslrootcert=system"), "{err}");
    let err = DatabaseTarget::parse("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca")
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/ca"), "{err}");
}

#[test]
fn modes() {
    let t = DatabaseTarget::parse("postgres://u:secret@h/db").unwrap();
    assert_eq!(t.sslmode(), "prefer");
    let t = DatabaseTarget::parse("postgres://u:secret@h/db?sslmode=allow").unwrap();
    assert_eq!(t.sslmode(), "allow");
    assert_eq!(
        t.config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Prefer
    );
    let t = DatabaseTarget::parse("hostaddr=127.0.0.1 sslmode=require").unwrap();
    assert_eq!(t.config.get_hosts().len(), 1);
    let t = DatabaseTarget::parse("postgres://h/db?sslnegotiation=direct&sslmode=require");
    assert_eq!(
        t.unwrap().config.get_ssl_negotiation(),
        tokio_postgres::config::SslNegotiation::Direct
    );
    let err = DatabaseTarget::parse("hostaddr=127.0.0.1 sslmode=verify-full sslrootcert=/x")
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs `host`"), "{err}");
}
