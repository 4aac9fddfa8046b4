//! vibee-sessions: Telegram session credentials of many tenants, kept in
//! PostgreSQL under application-level AES-256-GCM envelope encryption.

pub mod crypto;
mod crypto_provider;
pub mod db;
