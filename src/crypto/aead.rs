//! The one place that calls AES-256-GCM. Everything above it works in whole
//! messages; this works in buffers, so a seal costs one allocation.

use super::error::DecryptError;
use super::plaintext::Plaintext;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};

pub(super) const KEY_LEN: usize = 32;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;

/// An expanded AES-256-GCM key. Deliberately neither `Debug` nor `Clone`; the
/// key schedule is zeroized on drop (aes-gcm's `zeroize` feature), and boxed so
/// moving its owner leaves no copy of it behind on the stack.
pub(super) struct Cipher(Box<Aes256Gcm>);

impl Cipher {
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Self {
        Self(Box::new(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))))
    }

    /// Encrypts `out[start..]` in place and appends the tag.
    pub(super) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        out: &mut Vec<u8>,
        start: usize,
    ) {
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut out[start..]).into())
            // Only fails for messages longer than GCM's 64 GiB limit, which no field reaches.
            .expect("AES-GCM refused a message: longer than 64 GiB");
        out.extend_from_slice(&tag);
    }

    /// Encrypts `out[start..aad_at]` in place, authenticating `out[aad_at..]`
    /// as the associated data, then puts the tag in the associated data's
    /// place: the caller builds both in one buffer.
    pub(super) fn seal_before_associated_data(
        &self,
        nonce: &[u8; NONCE_LEN],
        out: &mut Vec<u8>,
        start: usize,
        aad_at: usize,
    ) {
        let (message, aad) = out.split_at_mut(aad_at);
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut message[start..]).into())
            // Only fails for messages longer than GCM's 64 GiB limit, which no field reaches.
            .expect("AES-GCM refused a message: longer than 64 GiB");
        out.truncate(aad_at);
        out.extend_from_slice(&tag);
    }

    /// Decrypts `ciphertext ‖ tag` into a buffer wiped on drop.
    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Plaintext, DecryptError> {
        let split = ciphertext_and_tag
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DecryptError)?;
        let (ciphertext, tag) = ciphertext_and_tag.split_at(split);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| DecryptError)?;
        let mut buf = Plaintext::from(ciphertext.to_vec());
        self.0
            .decrypt_inout_detached(
                &Nonce::from(*nonce),
                aad,
                buf.0.as_mut_slice().into(),
                &Tag::from(*tag),
            )
            .map_err(|_| DecryptError)?;
        Ok(buf)
    }

    /// Decrypts `buf[..aad_at]` in place, authenticated with `buf[aad_at..]`
    /// as the associated data, which it then drops: `buf` is left holding
    /// the plaintext alone (or, on failure, what it held, wiped on drop).
    pub(super) fn open_before_associated_data(
        &self,
        nonce: &[u8; NONCE_LEN],
        buf: &mut Plaintext,
        aad_at: usize,
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        let (ciphertext, aad) = buf.0.split_at_mut(aad_at);
        self.0
            .decrypt_inout_detached(
                &Nonce::from(*nonce),
                aad,
                ciphertext.into(),
                &Tag::from(*tag),
            )
            .map_err(|_| DecryptError)?;
        buf.0.truncate(aad_at);
        Ok(())
    }
}

/// Nonces fetched from the OS per refill: one `getrandom` call serves this
/// many encryptions (a call per nonce cost more than sealing 400 bytes).
const NONCES_PER_REFILL: usize = 128;

/// Random bytes from the OS, handed out as nonces by one thread. Nonces are
/// public (they are stored in every ciphertext): what matters is that none
/// repeats, which is why a forked child never reuses its parent's bytes (the
/// generation below), and why each nonce is wiped from the pool once taken.
struct NoncePool {
    bytes: [u8; NONCE_LEN * NONCES_PER_REFILL],
    next: usize,
    fork_generation: u64,
}

impl Drop for NoncePool {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

thread_local! {
    static NONCES: std::cell::RefCell<NoncePool> = const {
        std::cell::RefCell::new(NoncePool {
            bytes: [0; NONCE_LEN * NONCES_PER_REFILL],
            next: NONCE_LEN * NONCES_PER_REFILL,
            fork_generation: 0,
        })
    };
}

static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// The process's fork generation: it changes in a child after `fork()`, so a
/// child refills instead of replaying nonces its parent also hands out.
fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic, which is
        // async-signal-safe as required of a post-fork child handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
    FORK_GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// A fresh random 96-bit nonce.
pub(super) fn random_nonce() -> [u8; NONCE_LEN] {
    let generation = fork_generation();
    NONCES.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.next + NONCE_LEN > pool.bytes.len() || pool.fork_generation != generation {
            super::random_bytes(&mut pool.bytes);
            pool.next = 0;
            pool.fork_generation = generation;
        }
        let at = pool.next;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&pool.bytes[at..at + NONCE_LEN]);
        zeroize::Zeroize::zeroize(&mut pool.bytes[at..at + NONCE_LEN]);
        pool.next = at + NONCE_LEN;
        nonce
    })
}
