//! Random ids and secret strings, from the thread's cryptographically secure generator.
//!
//! Ids ([`new_id`]) are lowercase letters and digits, so they are subject tokens on the
//! bus and read the same in any case; secrets ([`random_string`]) use both cases for
//! more entropy per character.

use rand::Rng;
use rand::distr::Alphanumeric;

/// The characters of an id.
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random id: `prefix` (which may be empty) and `len` lowercase letters and digits,
/// e.g. `new_id("c_", 20)` is `c_3k9qvt2x7m0a1b2c3d4e`.
pub fn new_id(prefix: &str, len: usize) -> String {
    let mut rng = rand::rng();
    let body = (0..len).map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]));
    prefix.chars().chain(body).collect()
}

/// A random string of `len` ASCII letters and digits (about 5.95 bits each), for
/// secrets and tokens.
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_lowercase_letters_and_digits_after_their_prefix() {
        let id = new_id("ev_", 24);
        assert_eq!(id.len(), 27);
        let body = id.strip_prefix("ev_").unwrap();
        assert!(body.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        assert_eq!(new_id("", 6).len(), 6);
        let many: HashSet<String> = (0..1000).map(|_| new_id("c_", 20)).collect();
        assert_eq!(many.len(), 1000, "ids do not repeat");
    }

    #[test]
    fn random_strings_are_letters_and_digits_of_both_cases() {
        let joined: String = (0..100).map(|_| random_string(43)).collect();
        assert_eq!(joined.len(), 4300);
        assert!(joined.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(joined.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(joined.bytes().any(|b| b.is_ascii_lowercase()));
        assert_ne!(random_string(43), random_string(43));
    }
}
