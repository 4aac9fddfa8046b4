//! A view of the environment variables, so tests can pass their own. Its
//! own module because both `config` and `transit` read settings through it,
//! and `config` reads the transit settings: neither points back.

pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment; an empty value counts as unset.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}
