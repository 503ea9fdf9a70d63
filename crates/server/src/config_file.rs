//! The config file (`DASHBOARD_CONFIG` or `--config`, TOML): the backends to run on (`[[backends]]`), the
//! functions to create or update at start-up (`[[functions]]`, functions as code, each with its webhook when it has
//! a `[functions.webhook]` table), the tokens that may use the dashboard (`[[auth.tokens]]`), the schedules that
//! trigger functions (`[[schedules]]`) and the notifications sent of events (`[[notifications]]`). A mistake stops
//! start-up with a message naming the file, the entry and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashboard_backend_api::{Backend, BackendRegistry, Principal, Scope};
use dashboard_backends::BackendConfig;
use dashboard_core::{FunctionSpec, ScheduleId, ScheduleSpec, validate_name};
use dashboard_engine::{Dashboard, EngineError, Ensured, Price};
use dashboard_store::FunctionKey;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::TokenSpec;
use crate::notify::NotificationConfig;
use crate::webhook::{RawWebhook, Webhook};

/// A config file that cannot be used; the message names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and where.
    pub message: String,
}

/// What a config file declares.
#[derive(Clone, Debug)]
pub struct FileConfig {
    /// The backends, by name.
    pub backends: BackendRegistry,
    /// The functions to create or update at start-up.
    pub functions: Vec<FunctionSpec>,
    /// The tokens of `[[auth.tokens]]`; any turns auth on.
    pub tokens: Vec<TokenSpec>,
    /// What models cost (`[[prices]]`), for usage reported without a cost.
    pub prices: Vec<Price>,
    /// The webhooks of the functions that have one (`[functions.webhook]`), by function name. They are the server's
    /// settings, not the store's: a function created through the API has none.
    pub webhooks: BTreeMap<String, Webhook>,
    /// The schedules of `[[schedules]]`, created at start-up when missing (each one's id comes from what declares
    /// it, so it is created once, on any instance).
    pub schedules: Vec<ScheduleSpec>,
    /// The notifications of `[[notifications]]`.
    pub notifications: Vec<NotificationConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    backends: Vec<toml::Table>,
    #[serde(default)]
    functions: Vec<toml::Table>,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    prices: Vec<toml::Table>,
    #[serde(default)]
    schedules: Vec<toml::Table>,
    #[serde(default)]
    notifications: Vec<toml::Table>,
}

/// One `[[prices]]` entry as written: US dollars per million tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    model: String,
    input_per_mtok: f64,
    cached_input_per_mtok: Option<f64>,
    cache_write_per_mtok: Option<f64>,
    output_per_mtok: f64,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    tokens: Vec<toml::Table>,
}

/// One `[[auth.tokens]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    token_sha256: String,
    scopes: Vec<String>,
    backends: Option<Vec<String>>,
    daily_cost_usd: Option<f64>,
}

/// Reads and checks a config file; backends are built (secrets read from the environment) here, so a missing
/// secret is a start-up error, not a failed run.
pub fn load(path: &Path) -> Result<FileConfig, ConfigFileError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`], the webhooks' secrets read through `env` rather than from the process environment (the backends'
/// still come from the process environment).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FileConfig, ConfigFileError> {
    let error = |message: String| ConfigFileError { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|io| error(format!("cannot be read: {io}")))?;
    let raw: RawFile =
        toml::from_str(&text).map_err(|parse| error(parse.to_string().trim_end().to_owned()))?;
    let mut backends = BackendRegistry::default();
    for (index, table) in raw.backends.into_iter().enumerate() {
        let (name, backend) = backend(table).map_err(|(name, message)| {
            let entry = name
                .map_or_else(|| format!("backends[{index}]"), |name| format!("backends[{index}] ({name:?})"));
            error(format!("{entry}: {message}"))
        })?;
        if backends.contains(&name) {
            return Err(error(format!(
                "backends[{index}] ({name:?}): name: another backend is called {name:?}"
            )));
        }
        backends.insert(name, backend);
    }
    let mut functions = Vec::new();
    let mut webhooks = BTreeMap::new();
    for (index, mut table) in raw.functions.into_iter().enumerate() {
        let name = table.get("name").and_then(|name| name.as_str()).map(str::to_owned);
        let entry = name
            .map_or_else(|| format!("functions[{index}]"), |name| format!("functions[{index}] ({name:?})"));
        let webhook = table.remove("webhook");
        let spec = function(table).map_err(|message| error(format!("{entry}: {message}")))?;
        if functions.iter().any(|other: &FunctionSpec| other.name == spec.name) {
            return Err(error(format!("{entry}: name: another function is called {:?}", spec.name)));
        }
        if let Some(webhook) = webhook {
            let webhook = function_webhook(webhook, env)
                .map_err(|message| error(format!("{entry}: webhook: {message}")))?;
            webhooks.insert(spec.name.clone(), webhook);
        }
        functions.push(spec);
    }
    let mut tokens: Vec<TokenSpec> = Vec::new();
    for (index, table) in raw.auth.tokens.into_iter().enumerate() {
        let name = table.get("name").and_then(|name| name.as_str()).map(str::to_owned);
        let entry = name.map_or_else(
            || format!("auth.tokens[{index}]"),
            |name| format!("auth.tokens[{index}] ({name:?})"),
        );
        let token = token(table, &backends).map_err(|message| error(format!("{entry}: {message}")))?;
        if tokens.iter().any(|other| other.name == token.name) {
            return Err(error(format!("{entry}: name: another token is called {:?}", token.name)));
        }
        if tokens.iter().any(|other| other.sha256 == token.sha256) {
            return Err(error(format!("{entry}: token_sha256: another token has the same hash")));
        }
        tokens.push(token);
    }
    let mut prices: Vec<Price> = Vec::new();
    for (index, table) in raw.prices.into_iter().enumerate() {
        let price = price(table).map_err(|message| error(format!("prices[{index}]: {message}")))?;
        if prices.iter().any(|other| other.model == price.model) {
            return Err(error(format!("prices[{index}]: model: {:?} has a price already", price.model)));
        }
        prices.push(price);
    }
    let mut schedules = Vec::new();
    for (index, table) in raw.schedules.into_iter().enumerate() {
        let schedule: ScheduleSpec = settings(table)
            .and_then(|spec: ScheduleSpec| spec.validate().map(|()| spec).map_err(|error| error.to_string()))
            .map_err(|message| error(format!("schedules[{index}]: {message}")))?;
        if !functions.iter().any(|function| function.name == schedule.function) {
            return Err(error(format!(
                "schedules[{index}]: function: no [[functions]] entry is called {:?}",
                schedule.function
            )));
        }
        schedules.push(schedule);
    }
    let mut notifications: Vec<NotificationConfig> = Vec::new();
    for (index, table) in raw.notifications.into_iter().enumerate() {
        let name = table.get("name").and_then(|name| name.as_str()).map(str::to_owned);
        let entry = name.map_or_else(
            || format!("notifications[{index}]"),
            |name| format!("notifications[{index}] ({name:?})"),
        );
        let notification = NotificationConfig::from_table(table, env)
            .map_err(|message| error(format!("{entry}: {message}")))?;
        if notifications.iter().any(|other| other.name == notification.name) {
            return Err(error(format!(
                "{entry}: name: another notification is called {:?}",
                notification.name
            )));
        }
        notifications.push(notification);
    }
    Ok(FileConfig { backends, functions, tokens, prices, webhooks, schedules, notifications })
}

/// A function's `[functions.webhook]` table: its settings, its secret read through `env`.
fn function_webhook(value: toml::Value, env: &dyn Fn(&str) -> Option<String>) -> Result<Webhook, String> {
    let toml::Value::Table(table) = value else {
        return Err("must be a table: [functions.webhook] with secret_env and verify".into());
    };
    let raw: RawWebhook = settings(table)?;
    Webhook::from_raw(raw, env)
}

/// A price entry: a model's name, and prices that are numbers of dollars, not negative.
fn price(table: toml::Table) -> Result<Price, String> {
    let raw: RawPrice = settings(table)?;
    if raw.model.trim().is_empty() {
        return Err("model: must name a model".into());
    }
    let figures = [
        ("input_per_mtok", Some(raw.input_per_mtok)),
        ("cached_input_per_mtok", raw.cached_input_per_mtok),
        ("cache_write_per_mtok", raw.cache_write_per_mtok),
        ("output_per_mtok", Some(raw.output_per_mtok)),
    ];
    for (field, figure) in figures {
        if figure.is_some_and(|figure| !(figure.is_finite() && (0.0..=1_000_000.0).contains(&figure))) {
            return Err(format!("{field}: must be 0 to 1000000 (US dollars per million tokens)"));
        }
    }
    Ok(Price {
        model: raw.model,
        input_per_mtok: raw.input_per_mtok,
        cached_input_per_mtok: raw.cached_input_per_mtok,
        cache_write_per_mtok: raw.cache_write_per_mtok,
        output_per_mtok: raw.output_per_mtok,
    })
}

/// A token entry: a valid name, a 64-hex-digit hash, known scopes (the widest one counts, as each includes the ones
/// before it) and only configured backends.
fn token(table: toml::Table, backends: &BackendRegistry) -> Result<TokenSpec, String> {
    let raw: RawToken = settings(table)?;
    validate_name(&raw.name).map_err(|invalid| invalid.to_string())?;
    let sha256 =
        TokenSpec::parse_sha256(&raw.token_sha256).map_err(|message| format!("token_sha256: {message}"))?;
    if sha256 == crate::auth::sha256("") {
        return Err(
            "token_sha256: is the SHA-256 of an empty token (was the variable unset when it was made?)"
                .into(),
        );
    }
    let mut scope = None;
    for text in &raw.scopes {
        let parsed = text.parse::<Scope>().map_err(|message| format!("scopes: {message}"))?;
        scope = scope.max(Some(parsed));
    }
    let scope = scope.ok_or("scopes: empty; give one of read, trigger, admin")?;
    if let Some(names) = &raw.backends
        && let Some(unknown) = names.iter().find(|name| !backends.contains(name))
    {
        return Err(format!(
            "backends: no backend is called {unknown:?}; configured backends: {}",
            backends.names().join(", ")
        ));
    }
    if raw.daily_cost_usd.is_some_and(|limit| !(limit.is_finite() && limit > 0.0 && limit <= 1_000_000.0)) {
        return Err("daily_cost_usd: must be more than 0 and at most 1000000 (US dollars)".into());
    }
    Ok(TokenSpec {
        name: raw.name,
        sha256,
        scope,
        backends: raw.backends,
        daily_cost_usd: raw.daily_cost_usd,
    })
}

type EntryError = (Option<String>, String);

fn backend(mut table: toml::Table) -> Result<(String, Arc<dyn Backend>), EntryError> {
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) => name,
        Some(_) => return Err((None, "name: must be a string".into())),
        None => return Err((None, "name: missing; every backend needs a name".into())),
    };
    let fail = |message: String| (Some(name.clone()), message);
    validate_name(&name).map_err(|invalid| fail(invalid.to_string()))?;
    // The kind is checked here, before the tagged enum reads it, so that its mistakes read like the others.
    match table.get("kind") {
        Some(toml::Value::String(kind)) if !BackendConfig::kinds().contains(&kind.as_str()) => {
            return Err(fail(format!("kind: unknown kind {kind:?}; known kinds: {}", known_kinds())));
        }
        Some(toml::Value::String(_)) => {}
        Some(_) => return Err(fail("kind: must be a string".into())),
        None => return Err(fail(format!("kind: missing; one of {}", known_kinds()))),
    }
    let config = settings::<BackendConfig>(table).map_err(&fail)?;
    let backend = config.build().map_err(|error| fail(error.to_string()))?;
    Ok((name, backend))
}

/// The kinds a `[[backends]]` entry may name, for messages.
fn known_kinds() -> String {
    BackendConfig::kinds().join(", ")
}

/// The settings of an entry (a backend's, a token's); the error names the field.
fn settings<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|error| at_path(error.path(), error.inner().message()))
}

/// `field: message`, or the message alone when it is about the entry as a whole.
fn at_path(path: &serde_path_to_error::Path, message: impl std::fmt::Display) -> String {
    match path.to_string().as_str() {
        "." => message.to_string(),
        field => format!("{field}: {message}"),
    }
}

fn function(table: toml::Table) -> Result<FunctionSpec, String> {
    let value = serde_json::to_value(&table).map_err(|error| error.to_string())?;
    let spec: FunctionSpec =
        serde_path_to_error::deserialize(value).map_err(|error| at_path(error.path(), error.inner()))?;
    spec.validate().map_err(|invalid| invalid.to_string())?;
    Ok(spec)
}

/// How often one function's sync starts over after another instance changed it meanwhile, before it gives up.
const SYNC_ATTEMPTS: usize = 5;

/// What syncing one declared function did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Synced {
    Created,
    Updated,
    Unchanged,
}

/// Creates the declared functions that do not exist and updates those that changed; returns how many of each.
///
/// Instances that share a store start together and each syncs the same file: a function is created once (version 1),
/// whichever instance wins; the others find it made (their create answers `DuplicateName`) and go on as for a function
/// that was there, comparing it with the file. Updates are compare-and-set on the version read, so a function the
/// file changed is updated once, not once per instance.
pub async fn sync_functions(dashboard: &Dashboard, specs: &[FunctionSpec]) -> Result<(usize, usize), String> {
    let (mut created, mut updated) = (0, 0);
    for spec in specs {
        match sync_function(dashboard, spec)
            .await
            .map_err(|error| format!("function {:?}: {error}", spec.name))?
        {
            Synced::Created => created += 1,
            Synced::Updated => updated += 1,
            Synced::Unchanged => {}
        }
    }
    Ok((created, updated))
}

/// Creates or updates the schedules of the file; returns how many were created and updated. The `n`th entry of a
/// function has the same id on every start and every instance ([`config_schedule_id`]), so an entry whose cron or
/// input changed updates its schedule, and one that did not keeps its due time. An entry removed from the file leaves
/// its schedule (delete it through the API or the page), as a removed function stays.
pub async fn sync_schedules(dashboard: &Dashboard, specs: &[ScheduleSpec]) -> Result<(usize, usize), String> {
    let (mut created, mut updated) = (0, 0);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, spec) in specs.iter().enumerate() {
        let nth = seen.entry(spec.function.as_str()).or_default();
        let id = config_schedule_id(&spec.function, *nth);
        *nth += 1;
        match dashboard.ensure_schedule(id, spec.clone()).await {
            Ok(Ensured::Created) => created += 1,
            Ok(Ensured::Updated) => updated += 1,
            Ok(Ensured::Unchanged) => {}
            Err(error) => return Err(format!("schedules[{index}] ({:?}): {error}", spec.function)),
        }
    }
    Ok((created, updated))
}

/// The id of the `nth` (from 0) `[[schedules]]` entry of `function` in the config file.
pub fn config_schedule_id(function: &str, nth: usize) -> ScheduleId {
    let digest = Sha256::new()
        .chain_update(b"config schedule\0")
        .chain_update(function)
        .chain_update(nth.to_be_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest.finalize()[..16]);
    ScheduleId::from_digest(bytes)
}

/// Brings one function in the store to `spec`, starting over when another instance changed it between the read and
/// the write.
async fn sync_function(dashboard: &Dashboard, spec: &FunctionSpec) -> Result<Synced, String> {
    let key = FunctionKey::Name(spec.name.clone());
    let anyone = Principal::anonymous();
    for _ in 0..SYNC_ATTEMPTS {
        let stored = dashboard.store().get_function(&key).await.map_err(|error| error.to_string())?;
        let result = match stored {
            None => dashboard.create_function(&anyone, spec.clone()).await.map(|_| Synced::Created),
            Some(function) if function.spec() != *spec => dashboard
                .update_function(&anyone, &key, spec.clone(), Some(function.version))
                .await
                .map(|_| Synced::Updated),
            Some(_) => return Ok(Synced::Unchanged),
        };
        match result {
            // Another instance created, changed or deleted it meanwhile: read it again.
            Err(
                EngineError::DuplicateName { .. }
                | EngineError::VersionMismatch { .. }
                | EngineError::NotFound { .. },
            ) => {}
            outcome => return outcome.map_err(|error| error.to_string()),
        }
    }
    Err(format!("changed by another instance {SYNC_ATTEMPTS} times while this one synced it; start it again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<FileConfig, String> {
        let path = std::env::temp_dir()
            .join(format!("agent-dashboard-{}.toml", dashboard_core::ExecutionId::generate()));
        std::fs::write(&path, text).expect("a temp file");
        let loaded = load(&path).map_err(|error| error.message);
        let _ = std::fs::remove_file(&path);
        loaded
    }

    fn check_error(text: &str, expected: &str) {
        match load_text(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(message) => assert!(message.contains(expected), "{message:?} lacks {expected:?}"),
        }
    }

    #[test]
    fn a_good_file_declares_backends_and_functions() {
        let loaded = load_text(
            r#"
            [[backends]]
            name = "shell"
            kind = "command"
            command = "python3"
            args = ["-c", "{{ input.code }}"]

            [[backends]]
            name = "agentkit"
            kind = "agentkit"
            url = "http://127.0.0.1:3010/run"

            [[functions]]
            name = "run-code"
            backend = "shell"
            input_schema = { type = "object", required = ["code"], properties = { code = { type = "string" } } }
            timeout_secs = 60

            [[auth.tokens]]
            name = "ci"
            token_sha256 = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
            scopes = ["read", "trigger"]
            backends = ["shell"]
            "#,
        )
        .expect("valid file");
        let token = &loaded.tokens[0];
        assert_eq!((token.name.as_str(), token.scope), ("ci", Scope::Trigger), "the widest scope counts");
        assert_eq!(token.sha256, crate::auth::sha256("123"));
        assert_eq!(token.backends.as_deref(), Some(&["shell".to_owned()][..]));
        assert_eq!(loaded.backends.names(), ["agentkit", "shell"]);
        assert_eq!(loaded.backends.get("agentkit").map(|backend| backend.kind()), Some("http"));
        assert_eq!(loaded.functions[0].timeout_secs, Some(60));
        assert_eq!(loaded.functions[0].input_schema["required"][0], "code");
    }

    #[test]
    fn mistakes_name_the_entry_and_the_field() {
        check_error("[[backends]]\nkind = \"demo\"", "backends[0]: name: missing");
        check_error(
            "[[backends]]\nname = \"x\"\nkind = \"telepathy\"",
            "backends[0] (\"x\"): kind: unknown kind \"telepathy\"; known kinds: demo, command",
        );
        check_error(
            "[[backends]]\nname = \"x\"\nkind = \"command\"",
            "backends[0] (\"x\"): missing field `command`",
        );
        check_error(
            "[[backends]]\nname = \"x\"\nkind = \"command\"\ncommand = \"ls\"\ncolour = 1",
            "unknown field `colour`",
        );
        check_error(
            "[[backends]]\nname = \"x\"\nkind = \"demo\"\n[[backends]]\nname = \"x\"\nkind = \"demo\"",
            "backends[1] (\"x\"): name: another backend",
        );
        check_error(
            "[[functions]]\nname = \"f\"\nbackend = \"demo\"\ntimeout_secs = \"soon\"",
            "functions[0] (\"f\"): timeout_secs:",
        );
        check_error(
            "[[functions]]\nname = \"Bad Name\"\nbackend = \"demo\"",
            "functions[0] (\"Bad Name\"): name:",
        );
        check_error(
            "[[backends]]\nname = \"x\"\nkind = \"http\"\nurl = \"u\"\nretries = \"three\"",
            "(\"x\"): retries: invalid type",
        );
        check_error("[server]\nport = 1", "unknown field `server`");
        let hash = "a".repeat(64);
        let token =
            |fields: &str| format!("[[backends]]\nname = \"b\"\nkind = \"demo\"\n[[auth.tokens]]\n{fields}");
        check_error(
            &token("name = \"ci\"\ntoken_sha256 = \"abc\"\nscopes = [\"read\"]"),
            "auth.tokens[0] (\"ci\"): token_sha256:",
        );
        check_error(
            &token(&format!("name = \"ci\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"root\"]")),
            "auth.tokens[0] (\"ci\"): scopes: unknown scope \"root\"",
        );
        check_error(
            &token(&format!(
                "name = \"ci\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"trigger\"]\nbackends = [\"x\"]"
            )),
            "auth.tokens[0] (\"ci\"): backends: no backend is called \"x\"",
        );
        check_error(&token("name = \"ci\"\nscopes = [\"read\"]"), "missing field `token_sha256`");
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        check_error(
            &token(&format!("name = \"ci\"\ntoken_sha256 = \"{empty}\"\nscopes = [\"read\"]")),
            "token_sha256: is the SHA-256 of an empty token",
        );
        check_error("[[backends]\n", "TOML parse error");
    }

    #[test]
    fn a_webhook_is_kept_by_function_name_and_its_mistakes_are_named() {
        let hooked = "[[functions]]\nname = \"f\"\nbackend = \"demo\"\n[functions.webhook]\n";
        let path = std::env::temp_dir()
            .join(format!("agent-dashboard-{}.toml", dashboard_core::ExecutionId::generate()));
        let text =
            format!("{hooked}secret_env = \"F_SECRET\"\nverify = \"github\"\ninput = {{ t = \"/a/b\" }}");
        std::fs::write(&path, text).expect("a temp file");
        let loaded = load_with_env(&path, &|name| (name == "F_SECRET").then(|| "s".to_owned()));
        let _ = std::fs::remove_file(&path);
        let loaded = loaded.expect("valid file");
        let webhook = &loaded.webhooks["f"];
        assert_eq!(
            (webhook.verify, webhook.secret_env.as_str()),
            (crate::webhook::Verify::Github, "F_SECRET")
        );
        assert_eq!(loaded.functions[0].name, "f", "the webhook is no field of the function");
        check_error(
            &format!("{hooked}secret_env = \"DASHBOARD_TEST_UNSET_WEBHOOK_SECRET\"\nverify = \"github\""),
            "functions[0] (\"f\"): webhook: secret_env: the environment variable \
             DASHBOARD_TEST_UNSET_WEBHOOK_SECRET is not set",
        );
        check_error(
            &format!("{hooked}secret_env = \"X\"\nverify = \"hmac\""),
            "webhook: verify: unknown variant",
        );
        check_error(
            &format!("{hooked}secret_env = \"X\"\nverify = \"token\"\ncolour = 1"),
            "unknown field `colour`",
        );
        check_error(
            "[[functions]]\nname = \"f\"\nbackend = \"demo\"\nwebhook = \"yes\"",
            "functions[0] (\"f\"): webhook: must be a table",
        );
    }
}
