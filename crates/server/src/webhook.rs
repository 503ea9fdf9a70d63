//! Inbound webhooks (`[functions.webhook]` in the config file): how a delivery to `POST /hooks/{function}` proves it
//! comes from the sender that knows the secret (Standard Webhooks, GitHub, or a bearer token), which header names the
//! delivery, and how its payload becomes the function's input. The route itself is `api/hooks.rs`.

use std::collections::BTreeMap;

use dashboard_core::standard_webhooks::Secret;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

/// How a delivery proves where it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
    /// `{id}.{timestamp}.{body}`), the secret being `whsec_` + base64; the delivery is `webhook-id`.
    StandardWebhooks,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; the delivery is `X-GitHub-Delivery`.
    Github,
    /// `Authorization: Bearer <secret>`; the delivery, when the sender names one, is `Idempotency-Key`.
    Token,
}

/// One function's webhook, as the config file declares it.
#[derive(Clone)]
pub struct Webhook {
    /// How deliveries are verified.
    pub verify: Verify,
    /// The environment variable the secret was read from, for messages.
    pub secret_env: String,
    /// The Standard Webhooks secret, the HMAC key of GitHub's signatures, or the token.
    secret: Key,
    /// The input's keys and the JSON pointers into the payload they are taken from; `None`: the whole payload.
    pub input: Option<BTreeMap<String, String>>,
}

/// What a webhook's secret is used as.
#[derive(Clone)]
enum Key {
    /// A Standard Webhooks secret.
    StandardWebhooks(Secret),
    /// GitHub's HMAC key: the secret's bytes.
    Github(Vec<u8>),
    /// The bearer token.
    Token(Vec<u8>),
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("verify", &self.verify)
            .field("secret_env", &self.secret_env)
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

/// A `[functions.webhook]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    secret_env: String,
    verify: Verify,
    input: Option<BTreeMap<String, String>>,
}

impl Webhook {
    /// The settings of `raw`, the secret read now through `env` (a missing or malformed one is a start-up error, as
    /// a backend's is); the error names the field.
    pub(crate) fn from_raw(raw: RawWebhook, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let name = &raw.secret_env;
        let text =
            env(name).ok_or_else(|| format!("secret_env: the environment variable {name} is not set"))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("secret_env: the environment variable {name} is empty"));
        }
        let secret = match raw.verify {
            Verify::StandardWebhooks => Key::StandardWebhooks(
                Secret::parse(text).map_err(|reason| format!("secret_env: {name} {reason}"))?,
            ),
            Verify::Github => Key::Github(text.as_bytes().to_vec()),
            Verify::Token => Key::Token(text.as_bytes().to_vec()),
        };
        if let Some(input) = &raw.input {
            for (key, pointer) in input {
                if key.is_empty() {
                    return Err("input: a key is empty".into());
                }
                if !(pointer.is_empty() || pointer.starts_with('/')) {
                    return Err(format!(
                        "input.{key}: {pointer:?} is no JSON pointer; write it as \"/issue/title\" (\"\" is the whole \
                         payload)"
                    ));
                }
            }
        }
        Ok(Self { verify: raw.verify, secret_env: raw.secret_env, secret, input: raw.input })
    }

    /// Checks a delivery's signature (or token) in constant time, `header` reading its headers and `now` being the
    /// server's clock in Unix seconds. Returns the delivery's id when the sender names one; the error says why the
    /// delivery is refused (it never contains the secret).
    pub(crate) fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: i64,
    ) -> Result<Option<String>, String> {
        let required = |name: &str| header(name).ok_or_else(|| format!("the {name} header is missing"));
        match &self.secret {
            Key::StandardWebhooks(secret) => {
                let (id, timestamp, signatures) =
                    (required("webhook-id")?, required("webhook-timestamp")?, required("webhook-signature")?);
                // Several signatures may be sent (while a secret is rotated); one that verifies is enough.
                secret
                    .verify(id, timestamp, signatures, body, now)
                    .map(|()| Some(id.to_owned()))
                    .map_err(|refused| refused.to_string())
            }
            Key::Github(key) => {
                let signature = required("X-Hub-Signature-256")?;
                let hex = signature.strip_prefix("sha256=").ok_or(
                    "X-Hub-Signature-256: must be sha256= followed by the hex HMAC-SHA256 of the body",
                )?;
                let expected: String = hmac(key, body).iter().map(|byte| format!("{byte:02x}")).collect();
                if bool::from(expected.as_bytes().ct_eq(hex.to_ascii_lowercase().as_bytes())) {
                    Ok(header("X-GitHub-Delivery").map(str::to_owned))
                } else {
                    Err("X-Hub-Signature-256 does not verify".into())
                }
            }
            Key::Token(secret) => {
                let token = required("Authorization")?
                    .strip_prefix("Bearer ")
                    .ok_or("Authorization: must be Bearer followed by the webhook's secret")?;
                // Comparing the hashes keeps the secret's length from showing in the time taken.
                let (given, expected) = (Sha256::digest(token.trim().as_bytes()), Sha256::digest(secret));
                let matches = given.as_slice().ct_eq(expected.as_slice());
                if bool::from(matches) {
                    Ok(header("Idempotency-Key").map(str::to_owned))
                } else {
                    Err("the bearer token is not the webhook's secret".into())
                }
            }
        }
    }

    /// The function's input from a delivery's payload: the payload itself, or exactly the mapped keys — each the
    /// value its pointer finds (JSON `null` included); a key whose pointer finds nothing is left out, so that the
    /// function's schema decides whether it was needed.
    pub(crate) fn input(&self, payload: Value) -> Value {
        let Some(mapping) = &self.input else { return payload };
        let fields: Map<String, Value> = mapping
            .iter()
            .filter_map(|(key, pointer)| Some((key.clone(), payload.pointer(pointer)?.clone())))
            .collect();
        Value::Object(fields)
    }
}

/// The HMAC-SHA256 of `body` under `key` (GitHub's signature).
fn hmac(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook(verify: Verify, secret: &str, input: Option<&[(&str, &str)]>) -> Webhook {
        let input =
            input.map(|pairs| pairs.iter().map(|(k, p)| ((*k).to_owned(), (*p).to_owned())).collect());
        let raw = RawWebhook { secret_env: "SECRET".into(), verify, input };
        Webhook::from_raw(raw, &|_| Some(secret.to_owned())).expect("valid settings")
    }

    fn verify(
        webhook: &Webhook,
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<Option<String>, String> {
        let header = |name: &str| {
            headers.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|(_, value)| *value)
        };
        webhook.verify(header, body, now)
    }

    /// The test vector of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec(signature: &str, now: i64) -> Result<Option<String>, String> {
        let headers =
            [("webhook-id", SPEC_ID), ("webhook-timestamp", "1614265330"), ("webhook-signature", signature)];
        verify(&webhook(Verify::StandardWebhooks, SPEC_SECRET, None), &headers, SPEC_BODY, now)
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        assert_eq!(spec(SPEC_SIGNATURE, SPEC_TIMESTAMP), Ok(Some(SPEC_ID.to_owned())));
        // One good signature among several is enough, in any place.
        let several = format!("v1,bm90IHRoaXMgb25l {SPEC_SIGNATURE} v2,abc");
        assert_eq!(spec(&several, SPEC_TIMESTAMP + 299), Ok(Some(SPEC_ID.to_owned())));
        assert!(spec("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", SPEC_TIMESTAMP).is_err());
        assert!(spec(SPEC_SIGNATURE.trim_start_matches("v1,"), SPEC_TIMESTAMP).is_err(), "v1, is required");
        let stale = spec(SPEC_SIGNATURE, SPEC_TIMESTAMP + 301).expect_err("too old");
        assert!(stale.contains("webhook-timestamp"), "{stale}");
        assert!(spec(SPEC_SIGNATURE, SPEC_TIMESTAMP - 301).is_err(), "too far in the future");
        let other_body = verify(
            &webhook(Verify::StandardWebhooks, SPEC_SECRET, None),
            &[
                ("webhook-id", SPEC_ID),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", SPEC_SIGNATURE),
            ],
            br#"{"test": 2432232315}"#,
            SPEC_TIMESTAMP,
        );
        assert!(other_body.is_err());
        let missing = verify(&webhook(Verify::StandardWebhooks, SPEC_SECRET, None), &[], SPEC_BODY, 0);
        assert_eq!(missing, Err("the webhook-id header is missing".to_owned()));
    }

    /// The example of GitHub's documentation ("Validating webhook deliveries").
    #[test]
    fn the_github_example_verifies() {
        let github = webhook(Verify::Github, "It's a Secret to Everybody", None);
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let headers = [("X-Hub-Signature-256", signature), ("X-GitHub-Delivery", "d-1")];
        assert_eq!(verify(&github, &headers, b"Hello, World!", 0), Ok(Some("d-1".to_owned())));
        assert!(verify(&github, &headers, b"Hello, World?", 0).is_err());
        assert!(verify(&github, &[("X-Hub-Signature-256", &signature[7..])], b"Hello, World!", 0).is_err());
    }

    #[test]
    fn a_token_is_compared_whole() {
        let token = webhook(Verify::Token, "s3cret", None);
        assert_eq!(verify(&token, &[("Authorization", "Bearer s3cret")], b"{}", 0), Ok(None));
        let named = [("Authorization", "Bearer s3cret"), ("Idempotency-Key", "k")];
        assert_eq!(verify(&token, &named, b"{}", 0), Ok(Some("k".to_owned())));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
            assert!(verify(&token, &[("Authorization", wrong)], b"{}", 0).is_err(), "{wrong}");
        }
    }

    #[test]
    fn the_input_is_exactly_the_mapped_keys() {
        let payload =
            json!({"issue": {"title": "Bug", "body": null, "user": {"login": "ana"}}, "action": "opened"});
        let mapped = webhook(
            Verify::Token,
            "t",
            Some(&[
                ("title", "/issue/title"),
                ("body", "/issue/body"),
                ("author", "/issue/user/login"),
                ("url", "/x"),
            ]),
        );
        assert_eq!(mapped.input(payload.clone()), json!({"title": "Bug", "body": null, "author": "ana"}));
        assert_eq!(webhook(Verify::Token, "t", None).input(payload.clone()), payload);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let load = |verify: Verify, secret: Option<&str>, input: Option<(&str, &str)>| {
            let input = input.map(|(key, pointer)| BTreeMap::from([(key.to_owned(), pointer.to_owned())]));
            let raw = RawWebhook { secret_env: "HOOK_SECRET".into(), verify, input };
            Webhook::from_raw(raw, &|_| secret.map(str::to_owned)).expect_err("refused")
        };
        assert_eq!(
            load(Verify::Github, None, None),
            "secret_env: the environment variable HOOK_SECRET is not set"
        );
        assert!(load(Verify::Token, Some(" "), None).contains("is empty"));
        assert!(load(Verify::StandardWebhooks, Some("whsec_not base64!"), None).contains("whsec_"));
        assert!(load(Verify::Token, Some("t"), Some(("title", "issue/title"))).starts_with("input.title:"));
    }
}
