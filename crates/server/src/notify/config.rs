//! One `[[notifications]]` entry of the config file: its name, the receiver's URL, the events it is sent (`on`,
//! `functions`), the format of its body and the secret that signs it. Every mistake names the field.

use std::fmt;

use dashboard_core::standard_webhooks::Secret;
use dashboard_core::{EventKind, validate_name};
use reqwest::Url;
use serde::Deserialize;

/// The shape of a notification's body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// JSON `{type, timestamp, data: {event, execution, url}}`, with the Standard Webhooks headers (`webhook-id`,
    /// `webhook-timestamp`, and `webhook-signature` when the entry has a secret).
    #[default]
    StandardWebhooks,
    /// A Slack incoming-webhook message: `{"text": …}`.
    Slack,
}

/// A value of `on`: the end of an execution's run, or its wait for a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum On {
    Failed,
    TimedOut,
    Waiting,
    Succeeded,
    Cancelled,
}

impl On {
    fn kind(self) -> EventKind {
        match self {
            Self::Failed => EventKind::ExecutionFailed,
            Self::TimedOut => EventKind::ExecutionTimedOut,
            Self::Waiting => EventKind::ExecutionWaiting,
            Self::Succeeded => EventKind::ExecutionSucceeded,
            Self::Cancelled => EventKind::ExecutionCancelled,
        }
    }
}

/// A `[[notifications]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotification {
    name: String,
    url: String,
    on: Vec<On>,
    functions: Option<Vec<String>>,
    #[serde(default)]
    format: Format,
    secret_env: Option<String>,
}

/// One `[[notifications]]` entry, checked. Its `Debug` shows neither the URL (a Slack webhook's path is its secret)
/// nor the secret.
#[derive(Clone)]
pub struct NotificationConfig {
    /// Its name (unique in the file): the deliveries are stored under it.
    pub name: String,
    /// Where deliveries are posted (http or https).
    pub(crate) url: Url,
    /// The kinds of event it is sent, each once.
    pub kinds: Vec<EventKind>,
    /// Only events of these functions (by name); every function's when `None`.
    pub functions: Option<Vec<String>>,
    /// The shape of its body.
    pub format: Format,
    /// The environment variable the secret was read from.
    pub secret_env: Option<String>,
    /// The Standard Webhooks secret that signs its deliveries; unsigned without one.
    pub(crate) secret: Option<Secret>,
}

impl fmt::Debug for NotificationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationConfig")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("kinds", &self.kinds)
            .field("functions", &self.functions)
            .field("format", &self.format)
            .field("secret_env", &self.secret_env)
            .finish_non_exhaustive()
    }
}

impl NotificationConfig {
    /// An entry of the config file; secrets read through `env` (a variable that is not set stops start-up, as a
    /// webhook's does). The error names the field, and never holds the URL, which may carry a secret.
    pub fn from_table(table: toml::Table, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let raw: RawNotification =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
                match error.path().to_string().as_str() {
                    "." => error.inner().message().to_owned(),
                    field => format!("{field}: {}", error.inner().message()),
                }
            })?;
        validate_name(&raw.name).map_err(|error| error.to_string())?;
        let url = receiver_url(&raw.url)?;
        if raw.on.is_empty() {
            return Err(
                "on: empty; list what to notify of: failed, timed_out, waiting, succeeded, cancelled"
                    .to_owned(),
            );
        }
        let mut kinds: Vec<EventKind> = Vec::new();
        for kind in raw.on.iter().map(|on| on.kind()) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if let Some(functions) = &raw.functions {
            if functions.is_empty() {
                return Err(
                    "functions: empty, so nothing would be sent; leave it out for every function".to_owned()
                );
            }
            if let Some((index, name)) =
                functions.iter().enumerate().find(|(_, name)| validate_name(name).is_err())
            {
                return Err(format!("functions[{index}]: {name:?} is not a function name"));
            }
        }
        let secret = match (&raw.secret_env, raw.format) {
            (None, _) => None,
            (Some(_), Format::Slack) => {
                return Err(
                    "secret_env: a slack notification is not signed (Slack's incoming webhooks take no \
                            signature; the URL is the secret); remove it"
                        .to_owned(),
                );
            }
            (Some(name), Format::StandardWebhooks) => {
                let text = env(name)
                    .ok_or_else(|| format!("secret_env: the environment variable {name} is not set"))?;
                Some(Secret::parse(&text).map_err(|reason| format!("secret_env: {name} {reason}"))?)
            }
        };
        Ok(Self {
            name: raw.name,
            url,
            kinds,
            functions: raw.functions,
            format: raw.format,
            secret_env: raw.secret_env,
            secret,
        })
    }

    /// Whether its deliveries carry a `webhook-signature`.
    pub fn is_signed(&self) -> bool {
        self.secret.is_some()
    }
}

/// The receiver's URL: http or https, with a host. The message does not repeat it.
fn receiver_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("url: not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url: must be an http or https URL, not {}:", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url: has no host".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<NotificationConfig, String> {
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        let env = |name: &str| match name {
            "HOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
            "BAD_SECRET" => Some("whsec_not base64!".to_owned()),
            _ => None,
        };
        NotificationConfig::from_table(table, &env)
    }

    fn refused(text: &str) -> String {
        load(text).expect_err("refused")
    }

    #[test]
    fn an_entry_is_read_with_its_defaults() {
        let entry = load(
            r#"name = "ops"
               url = "https://hooks.example.com/x?token=t"
               on = ["failed", "timed_out", "failed"]
               secret_env = "HOOK_SECRET""#,
        )
        .expect("valid");
        assert_eq!(entry.kinds, vec![EventKind::ExecutionFailed, EventKind::ExecutionTimedOut]);
        assert_eq!(
            (entry.format, entry.functions.clone(), entry.is_signed()),
            (Format::StandardWebhooks, None, true)
        );
        let debug = format!("{entry:?}");
        assert!(!debug.contains("token") && !debug.contains("MfKQ"), "{debug}");
        let slack = load(
            r#"name = "chat"
               url = "https://hooks.slack.com/services/T/B/X"
               on = ["succeeded", "cancelled", "waiting"]
               functions = ["build"]
               format = "slack""#,
        )
        .expect("valid");
        assert_eq!(slack.format, Format::Slack);
        assert_eq!(slack.functions, Some(vec!["build".to_owned()]));
        assert!(!slack.is_signed());
    }

    #[test]
    fn mistakes_name_the_field() {
        let base = r#"name = "ops"
                      url = "http://127.0.0.1:9/hook"
                      on = ["failed"]"#;
        assert!(load(base).is_ok());
        let cases: &[(&str, &str)] = &[
            (r#"colour = "red""#, "colour: unknown field"),
            (r#"format = "teams""#, "format: unknown variant"),
            (r#"secret_env = "MISSING""#, "secret_env: the environment variable MISSING is not set"),
            (r#"secret_env = "BAD_SECRET""#, "secret_env: BAD_SECRET must hold `whsec_`"),
            (
                r#"secret_env = "HOOK_SECRET"
                format = "slack""#,
                "secret_env: a slack notification is not signed",
            ),
            (r#"functions = []"#, "functions: empty"),
            (r#"functions = ["ok", "Not A Name"]"#, "functions[1]: "),
        ];
        for (extra, expected) in cases {
            let message = refused(&format!("{base}\n{extra}"));
            assert!(message.starts_with(expected), "{extra}: {message}");
        }
        let replaced: &[(&str, &str, &str)] = &[
            (r#"on = ["failed"]"#, r#"on = ["exploded"]"#, "on[0]: unknown variant"),
            (r#"on = ["failed"]"#, "on = []", "on: empty"),
            (r#"on = ["failed"]"#, "", "missing field `on`"),
            ("http://127.0.0.1:9/hook", "ftp://example.com/secret-path", "url: must be an http or https URL"),
            ("http://127.0.0.1:9/hook", "not a url", "url: not a URL"),
            (r#"name = "ops""#, r#"name = "Ops Team""#, "name: "),
        ];
        for (from, to, expected) in replaced {
            let message = refused(&base.replace(from, to));
            assert!(message.starts_with(expected), "{to}: {message}");
            assert!(!message.contains("secret-path"), "the URL is not repeated: {message}");
        }
    }
}
