//! `BackendConfig`: the one list of backend kinds, each variant the settings its adapter module owns, read from a
//! `[[backends]]` entry by its `kind` and built into a backend. Adding a kind is one module and one variant here.

use std::sync::Arc;

use dashboard_backend_api::{Backend, BackendError};
use serde::de::{self, Deserialize, Deserializer};

use crate::{
    ClaudeBackend, ClaudeConfig, CodexBackend, CodexConfig, CommandBackend, CommandConfig, DemoBackend,
    DemoConfig, HttpBackend, HttpConfig, OpenAiBackend, OpenAiConfig, claude, codex, command, demo, http,
    openai,
};

/// The settings of one backend, by kind: a `[[backends]]` entry less its `name`. Each variant's settings refuse
/// fields they do not know, and an error in them names the field (`retries: invalid type …`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// A simulated agent ([`DemoBackend`]).
    #[serde(deserialize_with = "naming_the_field")]
    Demo(DemoConfig),
    /// A local program ([`CommandBackend`]).
    #[serde(deserialize_with = "naming_the_field")]
    Command(CommandConfig),
    /// The Codex CLI ([`CodexBackend`]).
    #[serde(deserialize_with = "naming_the_field")]
    Codex(CodexConfig),
    /// Claude Code ([`ClaudeBackend`]).
    #[serde(deserialize_with = "naming_the_field")]
    Claude(ClaudeConfig),
    /// An HTTP agent server ([`HttpBackend`]); `agentkit` is the original dashboard's name for it.
    #[serde(alias = "agentkit", deserialize_with = "naming_the_field")]
    Http(HttpConfig),
    /// An OpenAI-compatible model server ([`OpenAiBackend`]).
    #[serde(deserialize_with = "naming_the_field")]
    Openai(OpenAiConfig),
}

impl BackendConfig {
    /// The backend these settings describe. Secrets named by the settings are read now where the adapter needs them
    /// from the start (`secret_env` of `http`), so a missing one is an error here rather than a failed run.
    pub fn build(self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(match self {
            Self::Demo(DemoConfig {}) => Arc::new(DemoBackend),
            Self::Command(config) => Arc::new(CommandBackend::new(config)),
            Self::Codex(config) => Arc::new(CodexBackend::new(config)),
            Self::Claude(config) => Arc::new(ClaudeBackend::new(config)),
            Self::Http(config) => Arc::new(HttpBackend::new(config)?),
            Self::Openai(config) => Arc::new(OpenAiBackend::new(config)?),
        })
    }

    /// The kind, as the built backend reports it (`agentkit` is read as `http`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Demo(_) => demo::KIND,
            Self::Command(_) => command::KIND,
            Self::Codex(_) => codex::KIND,
            Self::Claude(_) => claude::KIND,
            Self::Http(_) => http::KIND,
            Self::Openai(_) => openai::KIND,
        }
    }

    /// Every name `kind` may take, in the order of the variants (an alias before its variant's name) — read from the
    /// derived deserializer itself, so this enum stays the only list of kinds.
    pub fn kinds() -> &'static [&'static str] {
        let entry = de::value::MapDeserializer::<_, KindsProbe>::new(std::iter::once(("kind", "")));
        match BackendConfig::deserialize(entry) {
            Err(KindsProbe(Some(kinds))) => kinds,
            _ => unreachable!("the empty kind is no variant, so the derive names every variant it knows"),
        }
    }
}

/// Deserializes a variant's settings so that an error names its field: an internally tagged enum reads the entry
/// into a buffer first, out of sight of the caller's `serde_path_to_error`, so the path is tracked here instead.
fn naming_the_field<'de, D, T>(settings: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(settings).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." { inner } else { de::Error::custom(format_args!("{path}: {inner}")) }
    })
}

/// The error of the probe in [`BackendConfig::kinds`]: it keeps the list of variants the derive passes to
/// `unknown_variant`.
#[derive(Debug)]
struct KindsProbe(Option<&'static [&'static str]>);

impl de::Error for KindsProbe {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Self(None)
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self(Some(expected))
    }
}

impl std::fmt::Display for KindsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probing the kinds of backend")
    }
}

impl std::error::Error for KindsProbe {}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn parse(entry: Value) -> Result<BackendConfig, String> {
        serde_path_to_error::deserialize(entry).map_err(|error| error.into_inner().to_string())
    }

    #[test]
    fn kinds_are_read_from_the_enum() {
        assert_eq!(
            BackendConfig::kinds(),
            ["demo", "command", "codex", "claude", "agentkit", "http", "openai"]
        );
    }

    #[test]
    fn each_kind_reads_its_settings_and_builds_a_backend_of_that_kind() {
        let check = |entry: Value, kind: &str| {
            let config = parse(entry.clone()).unwrap_or_else(|error| panic!("{entry}: {error}"));
            assert_eq!(config.kind(), kind, "{entry}");
            let backend = config.build().unwrap_or_else(|error| panic!("{entry}: {error}"));
            assert_eq!(backend.kind(), kind, "{entry}");
        };
        check(json!({"kind": "demo"}), "demo");
        check(json!({"kind": "command", "command": "ls"}), "command");
        check(json!({"kind": "codex"}), "codex");
        check(json!({"kind": "claude"}), "claude");
        check(json!({"kind": "http", "url": "http://127.0.0.1:1/run"}), "http");
        check(json!({"kind": "agentkit", "url": "http://127.0.0.1:1/run"}), "http");
        check(json!({"kind": "openai", "model": "m"}), "openai");
    }

    #[test]
    fn mistakes_in_settings_name_the_field() {
        let check = |entry: Value, expected: &str| match parse(entry.clone()) {
            Ok(config) => panic!("{entry} accepted as {config:?}"),
            Err(message) => assert!(message.contains(expected), "{message:?} lacks {expected:?}"),
        };
        check(json!({"kind": "demo", "steps": 3}), "unknown field `steps`");
        check(json!({"kind": "command"}), "missing field `command`");
        check(json!({"kind": "http", "url": "u", "retries": "three"}), "retries: invalid type");
        check(json!({"kind": "telepathy"}), "unknown variant `telepathy`");
    }
}
