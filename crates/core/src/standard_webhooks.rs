//! Standard Webhooks (<https://www.standardwebhooks.com>): the secret (`whsec_` followed by base64), the signature of a
//! message (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`) and its verification. One implementation for
//! everything the dashboard signs (the `http` backend's requests, notifications) and verifies (inbound webhooks).
//!
//! Pure computation: the caller reads the clock and the headers.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The prefix of a secret's text.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a message's timestamp may be from the verifier's clock, in seconds: the specification's five minutes.
/// Older messages are refused, so a captured one cannot be replayed later.
pub const TIMESTAMP_TOLERANCE_SECS: u64 = 5 * 60;

/// The most signatures of one `webhook-signature` header that are tried (a secret being rotated sends two or three);
/// the rest are ignored, so a long header costs no more than this many HMACs.
const MAX_SIGNATURES: usize = 16;

/// A signing secret: the HMAC key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why a secret's text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Nothing but blanks.
    #[error("is empty")]
    Empty,
    /// Not base64 after the prefix.
    #[error("must hold `whsec_` followed by base64")]
    NotBase64,
}

/// Why a message does not verify. The text never contains the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The `webhook-timestamp` header is not a whole number of seconds.
    #[error("webhook-timestamp: {0:?} is not a number of seconds")]
    BadTimestamp(String),
    /// The timestamp is too far from the verifier's clock.
    #[error(
        "webhook-timestamp: {sent_at} is more than {TIMESTAMP_TOLERANCE_SECS} s from the server's clock ({now}): an \
         old delivery replayed, or a clock that is off"
    )]
    Stale {
        /// The message's timestamp.
        sent_at: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// No `v1` signature of the header matches.
    #[error("webhook-signature does not verify")]
    NoMatch,
}

impl Secret {
    /// The secret of `text`: `whsec_` followed by base64 (the prefix may be left out), blanks around it ignored.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }

    /// A secret of these key bytes.
    pub fn from_key(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The secret as text: `whsec_` followed by the key in base64.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` value of a message: `v1,` followed by the base64 HMAC-SHA256 of
    /// `{id}.{timestamp}.{body}`, `timestamp` in Unix seconds.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a message as received: its `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (one or
    /// several space-separated signatures, of which one `v1` signature that matches is enough — a sender rotating
    /// its secret sends both) and its body, `now` being the verifier's clock in Unix seconds. The signatures are
    /// compared in constant time.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let sent_at: i64 =
            timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
        if now.abs_diff(sent_at) > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::Stale { sent_at, now });
        }
        let mac = self.mac(id, timestamp.trim(), body);
        let verified = signatures
            .split(' ')
            .filter_map(|signature| signature.strip_prefix("v1,"))
            .take(MAX_SIGNATURES)
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .any(|signature| mac.clone().verify_slice(&signature).is_ok());
        if verified { Ok(()) } else { Err(VerifyError::NoMatch) }
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            mac.update(part);
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(SPEC_SECRET).expect("the specification's secret")
    }

    fn check(signatures: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        secret().verify(SPEC_ID, "1614265330", signatures, body, now)
    }

    #[test]
    fn the_specification_vector_signs() {
        assert_eq!(secret().sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
        assert_eq!(secret().to_text(), SPEC_SECRET);
        // The prefix may be left out, and blanks around the text are ignored.
        assert_eq!(Secret::parse(" MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), Ok(secret()));
    }

    #[test]
    fn the_specification_vector_verifies() {
        assert_eq!(check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP), Ok(()));
        // One good signature among several is enough, in any place; other versions are ignored.
        let several = format!("v1,bm90IHRoaXMgb25l {SPEC_SIGNATURE} v2,abc");
        assert_eq!(check(&several, SPEC_BODY, SPEC_TIMESTAMP + 299), Ok(()));
        assert_eq!(check(&format!("{SPEC_SIGNATURE} v1,x"), SPEC_BODY, SPEC_TIMESTAMP - 300), Ok(()));
    }

    #[test]
    fn what_does_not_match_is_refused() {
        // The first character changed: a real difference of the HMAC, not of base64 padding bits.
        let changed_signature = "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(check(changed_signature, SPEC_BODY, SPEC_TIMESTAMP), Err(VerifyError::NoMatch));
        assert_eq!(
            check(&SPEC_SIGNATURE[3..], SPEC_BODY, SPEC_TIMESTAMP),
            Err(VerifyError::NoMatch),
            "v1, is required"
        );
        assert_eq!(
            check(SPEC_SIGNATURE, br#"{"test": 2432232315}"#, SPEC_TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(check("", SPEC_BODY, SPEC_TIMESTAMP), Err(VerifyError::NoMatch));
        let other = Secret::from_key(b"another key");
        let refused = other.verify(SPEC_ID, "1614265330", SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP);
        assert_eq!(refused, Err(VerifyError::NoMatch));
        let other_id = secret().verify("msg_other", "1614265330", SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP);
        assert_eq!(other_id, Err(VerifyError::NoMatch));
    }

    #[test]
    fn a_timestamp_far_from_the_clock_is_refused() {
        let stale = check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP + 301).expect_err("too old");
        assert_eq!(stale, VerifyError::Stale { sent_at: SPEC_TIMESTAMP, now: SPEC_TIMESTAMP + 301 });
        assert!(stale.to_string().starts_with("webhook-timestamp: "), "{stale}");
        assert!(check(SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP - 301).is_err(), "too far in the future");
        let not_a_number = secret().verify(SPEC_ID, "yesterday", SPEC_SIGNATURE, SPEC_BODY, SPEC_TIMESTAMP);
        assert_eq!(not_a_number, Err(VerifyError::BadTimestamp("yesterday".to_owned())));
    }

    #[test]
    fn a_bad_secret_says_why() {
        assert_eq!(Secret::parse("whsec_not base64!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("  "), Err(SecretError::Empty));
        assert_eq!(Secret::parse("whsec_"), Err(SecretError::Empty));
        assert_eq!(format!("{:?}", secret()), "Secret(…)", "Debug shows no key");
    }
}
