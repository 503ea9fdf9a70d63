//! `BackendRegistry`: the configured backends by name, and the one place that decides who may use which.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Backend, BackendError};

/// Who is asking: a token's name and the backends it was granted. [`Principal::anonymous`] is anyone, when auth is
/// off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (recorded as `triggered_by`), `None` when auth is off.
    pub name: Option<String>,
    /// The backends this principal may use; `None` means all.
    pub backends: Option<Vec<String>>,
}

impl Principal {
    /// Anyone: used when auth is off, and by embedders that do their own checks.
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// What a principal wants to do with a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a new execution on it.
    Trigger,
    /// Stop one of its executions.
    Cancel,
    /// Start an execution again on it.
    Retry,
}

/// The backends, by name.
#[derive(Clone, Default)]
pub struct BackendRegistry {
    backends: BTreeMap<String, Arc<dyn Backend>>,
}

impl std::fmt::Debug for BackendRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.backends.iter().map(|(name, backend)| (name, backend.kind()))).finish()
    }
}

impl BackendRegistry {
    /// Adds (or replaces) the backend called `name`.
    pub fn insert(&mut self, name: impl Into<String>, backend: Arc<dyn Backend>) {
        self.backends.insert(name.into(), backend);
    }

    /// The backend called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(name)
    }

    /// Whether a backend called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.backends.contains_key(name)
    }

    /// The backends, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Backend>)> {
        self.backends.iter().map(|(name, backend)| (name.as_str(), backend))
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// Whether `principal` may do `action` on backend `name`: the single place every such decision is made, by the
    /// engine for triggers, cancels and retries, so embedders get the same checks as the HTTP API.
    pub fn authorize(&self, principal: &Principal, name: &str, _action: Action) -> Result<(), BackendError> {
        match &principal.backends {
            Some(allowed) if !allowed.iter().any(|backend| backend == name) => {
                Err(BackendError::Forbidden { backend: name.to_owned() })
            }
            _ => Ok(()),
        }
    }
}
