//! `vibee-sessions serve`: migrate, check the master key, serve the API until
//! SIGTERM or ctrl-c, let in-flight requests finish, close the pool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use clap::Args;

use crate::api::{self, ApiSettings, AppState};
use crate::config::{self, Env};
use crate::db::activity::AuditQueue;
use crate::db::tokens::{self, TokenCache};
use crate::db::{PoolSettings, build_pool, keys, migrate};

use super::CliError;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Do not apply pending migrations at start (when a deploy step runs
    /// `vibee-sessions migrate` instead).
    #[arg(long)]
    no_migrate: bool,
}

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
    if !args.no_migrate {
        for version in migrate::run_pending(&target).await? {
            tracing::info!(%version, "applied migration");
        }
    }
    // The shared opener: the master key checked, the first data key made.
    let vault = Arc::new(super::store::open(env).await?.vault);
    tracing::info!(
        kek_id = %vault.master().current().kek_id(),
        primary_data_key = vault.ring().primary_id().0,
        "master key checked, data keys loaded"
    );
    // Follow rotations made by other processes: NOTIFY, with a periodic
    // reload as the fallback.
    let watcher = keys::spawn_key_watcher(target.clone(), vault.clone(), keys::DEFAULT_KEY_REFRESH);
    let pool = build_pool(&target, &pool_settings);
    // Verified tokens are cached while this listener hears every revocation.
    let token_cache = Arc::new(TokenCache::default());
    let token_watcher = tokens::spawn_token_watcher(target.clone(), token_cache.clone());
    let (audit, audit_writer) = AuditQueue::spawn(pool.clone());
    let app = AppState::new(pool.clone(), vault, audit.clone(), token_cache);
    let upkeep = api::spawn_metrics_upkeep(app.metrics.clone(), Duration::from_secs(5));
    let settings = ApiSettings {
        hsts: tls.is_some(),
        ..api_settings
    };
    let header_timeout = settings.header_timeout;
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
                .acceptor(RustlsAcceptor::new(config))
                .serve(router.into_make_service())
                .await
        }
        None => server.serve(router.into_make_service()).await,
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
    upkeep.abort();
    token_watcher.abort();
    pool.close();
    tracing::info!("stopped");
    Ok(())
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
