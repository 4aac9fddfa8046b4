//! A secret value in memory: what `KeyRing::open` returns, and what callers
//! hold before sealing. Its whole buffer is wiped when it is dropped.

use std::ops::Deref;

use zeroize::Zeroize;

/// Secret bytes, wiped on drop: the whole allocation, spare capacity
/// included, with one `memset` behind an optimization barrier (zeroize's
/// slice path). `Zeroizing<Vec<u8>>` instead stores zero byte by byte with
/// volatile writes: ~600 instructions for 400 bytes, 15 % of an open. No
/// `Debug`, so no `{:?}` prints it; no `Clone`, so no copy escapes the wipe
/// unless a caller makes one on purpose (`to_vec()`, then it is theirs to
/// protect).
///
/// Inside `crypto` the buffer is filled (never past the capacity it was made
/// with: a reallocation would leave an unwiped copy behind) and decrypted in
/// place through `.0`; the `Drop` impl keeps it from being moved out unwiped.
pub struct Plaintext(pub(super) Vec<u8>);

impl Plaintext {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Takes over the buffer (no copy): from now on it is wiped on drop.
impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        // After `clear` the spare capacity is the whole allocation: one call
        // wipes the bytes in use and any beyond them.
        self.0.clear();
        self.0.spare_capacity_mut().zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Plaintext {}
