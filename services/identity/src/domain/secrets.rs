//! Random tokens, their hashes, and PKCE.
//!
//! Tokens are long random strings with a type prefix (`pt_`, `rt_`, …). High-entropy
//! tokens are stored as SHA-256 hashes, which makes them findable by hash; the API secret
//! is stored as an argon2 hash, as a password would be.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use palaver_kit::random::random_string;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer token: prefix and 43 random characters (256 bits).
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", random_string(43))
}

/// Random bytes, base64 (standard alphabet).
pub fn random_base64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill(&mut bytes[..]);
    STANDARD.encode(bytes)
}

/// The stored form of a high-entropy token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string for a secret.
pub fn argon2_hash(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)?
        .to_string())
}

/// Whether `secret` matches an argon2 PHC string.
pub fn argon2_verify(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

/// Constant-time string equality.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a PKCE `code_verifier` matches an S256 `code_challenge` (RFC 7636).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    is_pkce_value(verifier)
        && same(
            &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            challenge,
        )
}

/// 43 to 128 characters of `[A-Za-z0-9-._~]`, the shape of PKCE verifiers; S256
/// challenges are 43 characters of base64url.
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            challenge
        ));
        assert!(!pkce_s256_matches("short", challenge));
    }

    #[test]
    fn argon2_round_trip() {
        let phc = argon2_hash("psk_secret").unwrap();
        assert!(argon2_verify("psk_secret", &phc));
        assert!(!argon2_verify("psk_other", &phc));
        assert!(!argon2_verify("psk_secret", "not a phc string"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token("pt_");
        assert_eq!(a.len(), 46);
        assert_ne!(a, new_token("pt_"));
        assert_eq!(token_hash("x").len(), 64);
    }
}
