//! Webhook signatures as the Standard Webhooks specification defines them: the signed
//! content is `<webhook-id>.<webhook-timestamp>.<body>`, the key is the base64 part of
//! the app's `whsec_…` secret, and `webhook-signature` is a space-separated list of
//! `v1,<base64 HMAC-SHA256>` (several while a secret is being rotated).
//!
//! The gateway signs with [`sign`]; a receiver (the demo site plays one) checks with
//! [`verify`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a `webhook-timestamp` may be from the receiver's clock, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a signature could not be made or was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("the webhook timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the webhook timestamp is more than {TOLERANCE_SECONDS} s from now")]
    Stale,
    #[error("no v1 signature matches")]
    NoMatch,
}

fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or(SignatureError::BadSecret)
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value for this message: `v1,<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
    let digest = mac(&key(secret)?, id, &timestamp.to_string(), body).finalize();
    Ok(format!("v1,{}", STANDARD.encode(digest.into_bytes())))
}

/// Checks a received message's headers against `secret`: the timestamp within
/// [`TOLERANCE_SECONDS`] of `now` (unix seconds) and one of the `v1` signatures right
/// (compared in constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let key = key(secret)?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - sent).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = mac(&key, id, timestamp.trim(), body);
    let matches = signatures
        .split_whitespace()
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| expected.clone().verify_slice(&candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_like_the_reference_libraries() {
        assert_eq!(sign(SECRET, ID, TIMESTAMP, BODY).unwrap(), SIGNATURE);
    }

    #[test]
    fn verifies_a_good_signature_among_several() {
        let header = format!("v1,bm90IGl0 {SIGNATURE}");
        assert_eq!(
            verify(SECRET, ID, "1614265330", &header, BODY, TIMESTAMP + 10),
            Ok(())
        );
    }

    #[test]
    fn refuses_a_changed_body_a_stale_timestamp_and_a_bad_secret() {
        let ts = "1614265330";
        assert_eq!(
            verify(SECRET, ID, ts, SIGNATURE, b"{}", TIMESTAMP),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                SECRET,
                ID,
                ts,
                SIGNATURE,
                BODY,
                TIMESTAMP + TOLERANCE_SECONDS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, ID, "soon", SIGNATURE, BODY, TIMESTAMP),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify("whsec_!!", ID, ts, SIGNATURE, BODY, TIMESTAMP),
            Err(SignatureError::BadSecret)
        );
    }
}
