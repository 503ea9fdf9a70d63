//! `BackendRegistry`: the configured backends by name, and the one place that decides who may use which.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Backend, BackendError};

/// What a token may do, each scope including the ones before it: `read` sees everything and changes nothing,
/// `trigger` may also trigger, cancel and retry executions, `admin` may also create, change and delete functions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// See everything, change nothing.
    Read,
    /// Also trigger, cancel and retry executions (on the backends granted).
    Trigger,
    /// Also create, change and delete functions.
    #[default]
    Admin,
}

impl Scope {
    /// `read`, `trigger` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trigger => "trigger",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Self::Read),
            "trigger" => Ok(Self::Trigger),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope {other:?}; the scopes are read, trigger and admin")),
        }
    }
}

/// Who is asking: a token's name, its scope and the backends it was granted. [`Principal::anonymous`] is anyone
/// (all scopes, all backends), used when auth is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (recorded as `triggered_by`), `None` when auth is off.
    pub name: Option<String>,
    /// What the principal may do.
    pub scope: Scope,
    /// The backends this principal may use; `None` means all.
    pub backends: Option<Vec<String>>,
}

impl Principal {
    /// Anyone: used when auth is off, and by embedders that do their own checks.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A named token with `scope`, limited to `backends` when given.
    pub fn token(name: impl Into<String>, scope: Scope, backends: Option<Vec<String>>) -> Self {
        Self { name: Some(name.into()), scope, backends }
    }

    /// Who, for messages: the token's name, or "anyone".
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("anyone")
    }

    /// Whether the principal's scope includes `needed` (each scope includes the ones before it). The one comparison
    /// of scopes: [`BackendRegistry::authorize`] and the server's route guard both ask it.
    pub fn has_scope(&self, needed: Scope) -> bool {
        self.scope >= needed
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
    /// Create, change or delete a function that runs on it.
    ChangeFunction,
}

impl Action {
    /// The verb: `trigger`, `cancel` or `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Cancel => "cancel",
            Self::Retry => "retry",
            Self::ChangeFunction => "change functions",
        }
    }
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
    /// engine for triggers, cancels, retries and changes of functions, so embedders get the same checks as the HTTP
    /// API.
    ///
    /// Triggering, cancelling and retrying need the `trigger` scope (or `admin`), changing functions `admin`; and
    /// each needs the backend among the principal's backends when it has a list.
    pub fn authorize(&self, principal: &Principal, name: &str, action: Action) -> Result<(), BackendError> {
        let forbidden = |reason: String| Err(BackendError::Forbidden { backend: name.to_owned(), reason });
        let needed = if action == Action::ChangeFunction { Scope::Admin } else { Scope::Trigger };
        if !principal.has_scope(needed) {
            return forbidden(format!(
                "the token {} has the {} scope, which may not {}",
                principal.label(),
                principal.scope,
                action.as_str()
            ));
        }
        match &principal.backends {
            Some(allowed) if !allowed.iter().any(|backend| backend == name) => forbidden(format!(
                "the token {} may not use the backend {name:?}; it may use: {}",
                principal.label(),
                allowed.join(", ")
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_includes_the_ones_before_it() {
        let check = |has: Scope, needed: Scope, expected: bool| {
            assert_eq!(Principal::token("t", has, None).has_scope(needed), expected, "{has} needs {needed}");
        };
        check(Scope::Read, Scope::Read, true);
        check(Scope::Read, Scope::Trigger, false);
        check(Scope::Trigger, Scope::Read, true);
        check(Scope::Trigger, Scope::Admin, false);
        check(Scope::Admin, Scope::Trigger, true);
        assert!(Principal::anonymous().has_scope(Scope::Admin), "anyone may do anything when auth is off");
    }
}
