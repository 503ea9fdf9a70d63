//! Functions as the engine last read them, kept for a moment: a burst of triggers of one function (and the start of
//! each of their runs) would otherwise read the same row from the store once per trigger and once more per run.
//!
//! Changes made through the engine (`Dashboard::create_function`, `update_function`, `delete_function`) take effect
//! at once: the engine forgets the function when the store has committed the change. A change written to the store
//! behind the engine's back (an embedding app calling the store itself) is seen within [`FRESH_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_core::{Function, FunctionId};
use dashboard_store::{DashboardStore, FunctionKey, StoreError};

/// How long a function read from the store is used without reading it again.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// The most functions kept; past it the cache starts over.
const MAX_CACHED: usize = 1024;

/// The functions read recently, by id and by name.
#[derive(Default)]
pub(crate) struct FunctionCache {
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    by_id: HashMap<FunctionId, Entry>,
    ids_by_name: HashMap<String, FunctionId>,
    /// Counts the changes made through the engine, so that a read that raced with one is not kept.
    changes: u64,
}

struct Entry {
    function: Arc<Function>,
    read_at: Instant,
}

impl FunctionCache {
    /// The function `key` names: from the cache if it was read less than [`FRESH_FOR`] ago, else from the store.
    pub(crate) async fn get(
        &self,
        store: &dyn DashboardStore,
        key: &FunctionKey,
    ) -> Result<Option<Arc<Function>>, StoreError> {
        let changes_before = {
            let state = self.lock();
            if let Some(function) = state.fresh(key) {
                return Ok(Some(function));
            }
            state.changes
        };
        let Some(function) = store.get_function(key).await? else { return Ok(None) };
        let function = Arc::new(function);
        let mut state = self.lock();
        // A change committed while the store was read may have made this copy old: keep it only if none was.
        if state.changes == changes_before {
            state.keep(Arc::clone(&function));
        }
        Ok(Some(function))
    }

    /// Forgets `function` (by id and by name); called once the store has committed a change to it.
    pub(crate) fn changed(&self, function: &Function) {
        let mut state = self.lock();
        state.changes += 1;
        state.by_id.remove(&function.id);
        state.ids_by_name.remove(&function.name);
        state.ids_by_name.retain(|_, id| *id != function.id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().expect("function cache lock poisoned")
    }
}

impl CacheState {
    fn fresh(&self, key: &FunctionKey) -> Option<Arc<Function>> {
        let entry = match key {
            FunctionKey::Id(id) => self.by_id.get(id)?,
            // The name is checked again: the function may have been renamed since the name was mapped.
            FunctionKey::Name(name) => Some(self.by_id.get(self.ids_by_name.get(name)?)?)
                .filter(|entry| entry.function.name == *name)?,
        };
        (entry.read_at.elapsed() < FRESH_FOR).then(|| Arc::clone(&entry.function))
    }

    fn keep(&mut self, function: Arc<Function>) {
        if self.by_id.len() >= MAX_CACHED {
            self.by_id.clear();
            self.ids_by_name.clear();
        }
        self.ids_by_name.insert(function.name.clone(), function.id);
        self.by_id.insert(function.id, Entry { function, read_at: Instant::now() });
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::FunctionSpec;
    use dashboard_store::MemoryStore;

    use super::*;

    /// A store holding one function, named "x", and an empty cache.
    async fn one_function_named_x() -> (MemoryStore, FunctionId, FunctionCache) {
        let store = MemoryStore::default();
        let function = Function::create(FunctionSpec::new("x", "demo")).expect("a function");
        let id = function.id;
        store.create_function(function).await.expect("stored");
        (store, id, FunctionCache::default())
    }

    #[tokio::test]
    async fn a_name_the_function_no_longer_has_does_not_find_it() {
        let (store, id, cache) = one_function_named_x().await;
        let by_name = |name: &str| FunctionKey::Name(name.to_owned());

        assert!(cache.get(&store, &by_name("x")).await.expect("read").is_some());
        // Renamed behind the cache's back; reading it by its new name refreshes its entry at once.
        store.update_function(id, FunctionSpec::new("y", "demo"), None).await.expect("renamed");
        let renamed = cache.get(&store, &by_name("y")).await.expect("read").expect("found by its new name");
        assert_eq!((renamed.id, renamed.name.as_str()), (id, "y"));
        assert!(cache.get(&store, &by_name("x")).await.expect("read").is_none(), "the old name is gone");
    }

    #[tokio::test]
    async fn a_change_through_the_engine_is_read_again_at_once() {
        let (store, id, cache) = one_function_named_x().await;
        assert_eq!(cache.get(&store, &FunctionKey::Id(id)).await.expect("read").expect("found").version, 1);
        let updated = store.update_function(id, FunctionSpec::new("x", "demo"), None).await.expect("updated");
        assert_eq!(
            cache.get(&store, &FunctionKey::Id(id)).await.expect("read").expect("found").version,
            1,
            "within its second the copy read before is used"
        );
        cache.changed(&updated.value);
        assert_eq!(cache.get(&store, &FunctionKey::Id(id)).await.expect("read").expect("found").version, 2);
    }
}
