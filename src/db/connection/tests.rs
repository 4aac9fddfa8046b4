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

#[test]
fn several_hosts_and_target_session_attrs_reach_tokio_postgres() {
    use tokio_postgres::config::TargetSessionAttrs;
    let t = DatabaseTarget::parse(
        "postgres://u:secret@db-a:5432,db-b:5433/db?target_session_attrs=read-write\
         &sslmode=disable",
    )
    .unwrap();
    assert_eq!(t.config.get_hosts().len(), 2);
    assert_eq!(t.config.get_ports(), [5432, 5433]);
    assert_eq!(
        t.config.get_target_session_attrs(),
        TargetSessionAttrs::ReadWrite
    );
    let t = DatabaseTarget::parse(
        "host=db-a,db-b port=5432,5433 dbname=db sslmode=disable target_session_attrs=any",
    )
    .unwrap();
    assert_eq!(t.config.get_hosts().len(), 2);
    assert_eq!(t.config.get_target_session_attrs(), TargetSessionAttrs::Any);

    for value in ["primary", "standby", "prefer-standby"] {
        let err = DatabaseTarget::parse(&format!("host=a,b target_session_attrs={value}"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("target_session_attrs={value} is not supported"))
                && err.contains("read-write"),
            "{err}"
        );
    }
    let err = DatabaseTarget::parse("postgres://a,b/db?target_session_attrs=rw")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("invalid target_session_attrs \"rw\""), "{err}");
    let err = DatabaseTarget::parse("host=a,b,c port=1,2 dbname=d")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("3 host(s) but 2 ports"), "{err}");
}

/// Every host tried is named with its reason, and the password never appears.
#[tokio::test]
async fn a_failure_names_each_host_and_never_the_password() {
    let dead = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (p1, p2) = (dead(()), dead(()));
    let t = DatabaseTarget::parse(&format!(
        "postgres://u:Secret-pw-123@127.0.0.1:{p1},localhost:{p2}/db?sslmode=disable\
         &target_session_attrs=read-write"
    ))
    .unwrap();
    let err = t.connect_client().await.err().unwrap().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{p1}: "))
            && err.contains(&format!("localhost:{p2}: "))
            && err.contains("none of the 2 hosts")
            && err.contains("target_session_attrs=read-write"),
        "{err}"
    );
    assert!(!err.contains("Secret-pw-123"), "{err}");
}
