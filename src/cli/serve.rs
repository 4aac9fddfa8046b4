//! `vibee-sessions serve`: migrate, check the master key, serve the API until
//! SIGTERM or ctrl-c, let in-flight requests finish, close the pool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use clap::Args;

use crate::api::limits::CappedAcceptor;
use crate::api::{self, ApiSettings, AppState};
use crate::config::{self, Env};
use crate::db::activity::{self, AuditQueue};
use crate::db::tokens::{self, TokenCache};
use crate::db::{PoolSettings, build_pool, check_timeouts, keys, migrate};

use super::CliError;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Do not apply pending migrations at start (when a deploy step runs
    /// `vibee-sessions migrate` instead).
    #[arg(long)]
    no_migrate: bool,
}

/// How often a transit engine's `sys/health` is asked, for `/readyz`
/// (`MASTER_KEY_TRANSIT_PROBE_SECS`).
const TRANSIT_PROBE: Duration = Duration::from_secs(10);
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_MAX_STREAMS: u32 = 128;
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// How long in-flight requests may run on after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

fn tls_files(env: &dyn Env) -> Result<Option<(PathBuf, PathBuf)>, CliError> {
    match (env.get("TLS_CERT_FILE"), env.get("TLS_KEY_FILE")) {
        (Some(cert), Some(key)) => Ok(Some((cert.into(), key.into()))),
        (None, None) => Ok(None),
        _ => Err(CliError::new(
            CliError::CONFIG,
            "set both TLS_CERT_FILE and TLS_KEY_FILE to serve HTTPS, or neither",
        )),
    }
}

/// HTTP and pool limits from the environment (docs/CONFIGURATION.md).
fn limits(env: &dyn Env) -> Result<(ApiSettings, PoolSettings), CliError> {
    let secs = |name, default, max| -> Result<Duration, CliError> {
        Ok(Duration::from_secs(config::number(
            env, name, default, 1, max,
        )?))
    };
    let api = ApiSettings {
        request_timeout: secs("HTTP_REQUEST_TIMEOUT_SECS", 30, 3600)?,
        body_timeout: secs("HTTP_BODY_TIMEOUT_SECS", 10, 3600)?,
        header_timeout: secs("HTTP_HEADER_TIMEOUT_SECS", 10, 3600)?,
        max_connections: config::number(env, "HTTP_MAX_CONNECTIONS", 1024, 1, 1_000_000)? as usize,
        token_concurrency: config::number(env, "TOKEN_MAX_CONCURRENCY", 32, 1, 100_000)? as usize,
        token_queue_wait: Duration::from_secs(config::number(
            env,
            "TOKEN_QUEUE_WAIT_SECS",
            5,
            0,
            3600,
        )?),
        stats_max_age: Duration::from_secs(config::number(
            env,
            "STATS_MAX_AGE_SECS",
            api::DEFAULT_STATS_MAX_AGE.as_secs(),
            0,
            3600,
        )?),
        ..ApiSettings::default()
    };
    let defaults = PoolSettings::default();
    let pool = PoolSettings {
        max_size: config::number(env, "DB_POOL_SIZE", defaults.max_size as u64, 1, 1000)? as usize,
        wait_timeout: secs("DB_POOL_WAIT_SECS", defaults.wait_timeout.as_secs(), 600)?,
        ..defaults
    };
    Ok((api, pool))
}

pub async fn run(args: &ServeArgs, env: &dyn Env) -> Result<(), CliError> {
    crate::crypto_provider::install();
    let (api_settings, pool_settings) = limits(env)?;
    let target = super::store::target(env)?;
    let listen = config::listen_addr(env);
    let addr: SocketAddr = listen.parse().map_err(|_| {
        CliError::new(
            CliError::CONFIG,
            format!("LISTEN_ADDR {listen:?} is not an address:port such as 127.0.0.1:8080"),
        )
    })?;
    let tls = tls_files(env)?;
    let transit_probe = Duration::from_secs(config::number(
        env,
        "MASTER_KEY_TRANSIT_PROBE_SECS",
        TRANSIT_PROBE.as_secs(),
        1,
        3600,
    )?);
    // LISTEN, the migration lock: refused here, before anything relies on
    // them, if DATABASE_DIRECT_URL is not one server session.
    let direct = super::store::direct_session(env).await?;
    if !args.no_migrate {
        for version in migrate::run_pending(&direct).await? {
            tracing::info!(%version, "applied migration");
        }
    }
    // The recorder first, so the start-up's transit calls are counted too.
    let _ = api::metrics_handle();
    // The shared opener: the master key checked, the first data key made.
    let vault = Arc::new(super::store::open(env).await?.vault);
    tracing::info!(
        kek_id = %vault.master().current().kek_id(),
        primary_data_key = vault.ring().primary_id().0,
        "master key checked, data keys loaded"
    );
    // Follow rotations made by other processes: NOTIFY, with a periodic
    // reload as the fallback.
    let refresh = Duration::from_secs(config::number(
        env,
        "KEY_REFRESH_SECS",
        keys::DEFAULT_KEY_REFRESH.as_secs(),
        1,
        3600,
    )?);
    vault.set_refresh_period(refresh);
    let watcher = keys::spawn_key_watcher(direct.clone(), vault.clone(), refresh);
    // A transit master key: the token kept fresh, the engine's state known.
    let transit_upkeep = vault
        .master()
        .current()
        .transit()
        .map(|t| crate::transit::spawn_upkeep(t.clone(), transit_probe));
    let pool = build_pool(&target, &pool_settings);
    if config::database_direct_url(env).is_some() && config::prepared_statements(env)? {
        tokio::spawn(warn_if_pooled_with_prepared_statements(target.clone()));
    }
    match check_timeouts(&pool, &pool_settings).await {
        Ok(None) => {}
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Err(e) => tracing::warn!(error = %e, "cannot read the pooled sessions' timeouts"),
    }
    let pool_refresh = keys::spawn_pool_refresh(pool.clone(), vault.clone(), refresh);
    // Verified tokens are cached while this listener hears every revocation.
    let token_cache = Arc::new(TokenCache::default());
    let token_watcher = tokens::spawn_token_watcher(direct.clone(), token_cache.clone());
    // The audit writer's own connections: its commits never queue for a
    // connection behind the readers that wait for them.
    let audit_in_flight = config::number(
        env,
        "AUDIT_MAX_IN_FLIGHT",
        activity::MAX_IN_FLIGHT as u64,
        1,
        64,
    )? as usize;
    let audit_pool = build_pool(
        &target,
        &PoolSettings {
            max_size: audit_in_flight,
            ..pool_settings.clone()
        },
    );
    let (audit, audit_writer) = AuditQueue::spawn(audit_pool, audit_in_flight);
    let metrics_token = env.get("METRICS_TOKEN").map(secrecy::SecretString::from);
    let metrics_refresh =
        Duration::from_secs(config::number(env, "METRICS_REFRESH_SECS", 15, 1, 3600)?);
    let app = AppState::new(
        pool.clone(),
        vault,
        audit.clone(),
        token_cache,
        metrics_token,
        &api_settings,
    );
    let upkeep = api::spawn_metrics_upkeep(app.metrics.clone(), Duration::from_secs(5));
    let gauges = api::spawn_gauge_refresh(app.clone(), metrics_refresh);
    let settings = ApiSettings {
        hsts: tls.is_some(),
        ..api_settings
    };
    let header_timeout = settings.header_timeout;
    let max_connections = settings.max_connections;
    let router = api::router(app, &settings);

    let handle: Handle<SocketAddr> = Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let announce = handle.clone();
    tokio::spawn(async move {
        if let Some(bound) = announce.listening().await {
            tracing::info!("listening on {scheme}://{bound}");
        }
    });
    // Slowloris: a client that trickles its headers is cut off.
    let mut server = axum_server::bind(addr).handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(header_timeout);
    // HTTP/2: a peer that stops answering pings is dropped, and one
    // connection cannot open unbounded streams.
    server
        .http_builder()
        .http2()
        .keep_alive_interval(Some(H2_KEEPALIVE))
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let capped = CappedAcceptor::new(DefaultAcceptor, max_connections);
    let served = match tls {
        Some((cert, key)) => {
            let config = RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    CliError::new(
                        CliError::CONFIG,
                        format!(
                            "cannot load TLS_CERT_FILE {} / TLS_KEY_FILE {}: {e}",
                            cert.display(),
                            key.display()
                        ),
                    )
                })?;
            server
                .acceptor(RustlsAcceptor::new(config).acceptor(capped))
                .serve(router.into_make_service())
                .await
        }
        None => {
            server
                .acceptor(capped)
                .serve(router.into_make_service())
                .await
        }
    };
    // Requests are done (or cut off after the drain period): write the audit
    // events still queued before the pool goes. A flush, not a wait for the
    // writer to see every sender dropped: a connection task that outlives the
    // drain may still hold one.
    let pending = audit.pending();
    match tokio::time::timeout(DRAIN, audit.flush()).await {
        Ok(Ok(())) if pending > 0 => {
            tracing::info!(events = pending, "audit events written before stopping");
        }
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, pending = audit.pending(), "audit events lost at stop")
        }
        Err(_) => tracing::error!(
            pending = audit.pending(),
            "the audit log writer did not finish within the drain period; queued audit events are lost"
        ),
    }
    audit_writer.abort();
    served.map_err(|e| CliError::failure(format!("cannot serve on {addr}: {e}")))?;
    watcher.abort();
    if let Some(t) = transit_upkeep {
        t.abort();
    }
    pool_refresh.abort();
    upkeep.abort();
    gauges.abort();
    token_watcher.abort();
    pool.close();
    tracing::info!("stopped");
    Ok(())
}

/// `DATABASE_URL` apart from `DATABASE_DIRECT_URL` is most likely a pooler.
/// In the background (a transaction pooler takes the probe's 3 s): when it
/// is not one server session and prepared statements are on, say what will
/// fail and why, unless the pooler tracks them (PgBouncer >= 1.21).
async fn warn_if_pooled_with_prepared_statements(target: crate::db::DatabaseTarget) {
    use crate::db::listen::{Lost, require_session};
    let pooled = match require_session(&target).await {
        Ok(()) => false,
        Err(Lost::Deaf) => true,
        Err(Lost::Db(e)) => e.to_string().contains("prepared statement"),
    };
    if pooled {
        tracing::warn!(
            "DATABASE_URL goes through a transaction-mode pooler and DATABASE_PREPARED_STATEMENTS \
             is on: unless the pooler tracks prepared statements (PgBouncer >= 1.21 with \
             max_prepared_statements > 0), requests fail with 'prepared statement ... does not \
             exist'; set DATABASE_PREPARED_STATEMENTS=off (docs/DEPLOYMENT.md)"
        );
    }
}

async fn shutdown_on_signal(handle: Handle<SocketAddr>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    handle.graceful_shutdown(Some(DRAIN));
}
