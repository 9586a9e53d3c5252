//! Key-encryption key, authenticated encryption of secrets at rest, random
//! tokens, hashes for lookups and argon2id password hashing.

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

use super::StoreError;

/// Key-encryption key (32 bytes, AES-256-GCM). Encrypts the secrets the
/// gateway must be able to read back: client secrets, access-generator
/// tokens and signing private keys. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl Kek {
    /// Parses a base64 (standard or URL-safe, padded or not) encoded 32-byte key.
    pub fn from_base64(s: &str) -> Result<Kek, StoreError> {
        let s = s.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(s).ok())
            .ok_or_else(|| StoreError::Invalid("KEK is not valid base64".into()))?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|_| StoreError::Invalid("KEK must decode to exactly 32 bytes".into()))?;
        Ok(Kek(bytes))
    }

    /// Uses the given 32 raw bytes as the key.
    pub fn from_bytes(bytes: [u8; 32]) -> Kek {
        Kek(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Kek {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Kek(bytes)
    }

    /// Standard base64 with padding (44 characters); `from_base64` reads it back.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub(crate) fn cipher(&self) -> Result<Cipher, StoreError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &self.0)
            .map_err(|_| StoreError::Crypto("cannot initialise AES-256-GCM".into()))?;
        Ok(Cipher { key })
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// AES-256-GCM with a random 12-byte nonce per message. Stored form:
/// base64(nonce || ciphertext || tag). The associated data binds a
/// ciphertext to the record it belongs to, so that it cannot be moved to
/// another row.
pub(crate) struct Cipher {
    key: RandomizedNonceKey,
}

impl Cipher {
    pub(crate) fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, StoreError> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    pub(crate) fn open(&self, aad: &str, stored: &str) -> Result<Vec<u8>, StoreError> {
        let fail = || StoreError::Crypto("cannot decrypt a stored secret (wrong KEK?)".into());
        let raw = STANDARD.decode(stored).map_err(|_| fail())?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(fail());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    // Failure means the OS random source is broken; nothing sensible can
    // continue without randomness.
    aws_lc_rs::rand::fill(buf).expect("system random number generator failed");
}

/// Lower-case hex SHA-256 of `s`; the lookup key of stored opaque secrets.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(digest(&SHA256, s.as_bytes()).as_ref())
}

/// `prefix` followed by `bytes` random bytes in unpadded base64url.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    let mut out = String::with_capacity(prefix.len() + bytes.div_ceil(3) * 4);
    out.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
    out
}

/// `prefix` followed by 16 random bytes in lower-case hex: record ids.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut buf = [0u8; 16];
    fill_random(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}

/// Constant-time string equality.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// argon2id hash with the default (OWASP) parameters: m=19456 KiB, t=2, p=1.
pub(crate) fn hash_password(password: &str) -> Result<String, StoreError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| StoreError::Crypto("cannot encode password salt".into()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| StoreError::Crypto("password hashing failed".into()))
}

/// Verifies `password` against a PHC string; a malformed hash counts as a mismatch.
pub(crate) fn verify_password_hash(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A well-formed argon2id hash with the same parameters as real ones and
/// an all-zero output no known password produces; verified against when a
/// user does not exist or has no password, so that the answer takes the
/// same time.
pub(crate) const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
