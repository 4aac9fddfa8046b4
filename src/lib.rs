//! vibee-sessions: Telegram session credentials of many tenants, kept in
//! PostgreSQL under application-level AES-256-GCM envelope encryption.
//!
//! Modules by concern; arrows point inward: `cli` uses `db` and `crypto`,
//! `db` uses `crypto`, `crypto` uses nothing of ours.

pub mod api;
pub mod boot;
pub mod cli;
pub mod config;
pub mod crypto;
mod crypto_provider;
pub mod db;
pub mod domain;
pub mod envfile;
pub mod environment;
pub mod hardening;
pub mod kek;
pub mod rotation;
pub mod transit;
