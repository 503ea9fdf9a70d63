//! `DashboardBuilder`: the store, the backends and the run loop's settings an embedder chooses, then `build()`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_backend_api::{Backend, BackendRegistry};
use dashboard_store::DashboardStore;
use tokio::runtime::Handle;
use tokio::sync::{Notify, broadcast};

use crate::Dashboard;
use crate::budgets::{Price, TokenBudgets};
use crate::callbacks::CallbackKey;
use crate::cluster::{self, ClusterSettings, Identity, Membership};
use crate::compiled::CompiledCache;
use crate::functions::FunctionCache;
use crate::health::StoreProbe;
use crate::inner::{Inner, Settings};
use crate::metrics::EngineMetrics;
use crate::run::LogLimit;
use crate::scheduler::Scheduler;

/// The largest output, as JSON, that a run may store unless the builder says otherwise: 1 MiB.
const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Builds a [`Dashboard`].
pub struct DashboardBuilder {
    store: Option<Arc<dyn DashboardStore>>,
    backends: BackendRegistry,
    max_concurrency: usize,
    bus_capacity: usize,
    settings: Settings,
    instance_id: Option<String>,
    cluster: Option<ClusterSettings>,
}

impl Default for DashboardBuilder {
    fn default() -> Self {
        Self {
            store: None,
            backends: BackendRegistry::default(),
            max_concurrency: 32,
            bus_capacity: 4096,
            settings: Settings {
                default_timeout: None,
                cancel_grace: Duration::from_secs(10),
                max_log_line_bytes: 16 * 1024,
                log_limit: LogLimit::default(),
                max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
                public_url: None,
                prices: Vec::new(),
                token_budgets: TokenBudgets::new(),
            },
            instance_id: None,
            cluster: None,
        }
    }
}

impl DashboardBuilder {
    /// The store (required).
    pub fn store(mut self, store: Arc<dyn DashboardStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds a backend under `name`.
    pub fn backend(mut self, name: impl Into<String>, backend: impl Backend) -> Self {
        self.backends.insert(name, Arc::new(backend));
        self
    }

    /// Adds every backend of a registry.
    pub fn backends(mut self, registry: BackendRegistry) -> Self {
        for (name, backend) in registry.iter() {
            self.backends.insert(name, backend.clone());
        }
        self
    }

    /// How many executions may run at once in all (default 32); more wait in `queued`.
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.max_concurrency = limit.max(1);
        self
    }

    /// The timeout of functions that set none (default: none).
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.default_timeout = timeout;
        self
    }

    /// How long a stopped backend gets to clean up before the engine stops waiting for it (default 10 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.settings.cancel_grace = grace;
        self
    }

    /// Log lines longer than this many bytes are cut (default 16 KiB).
    pub fn max_log_line_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_log_line_bytes = bytes.max(64);
        self
    }

    /// How many log lines one execution may keep (default 100,000): past it, one `system` line says so and the rest
    /// of the execution's log is dropped, while the run goes on. The engine's own opening and closing lines are not
    /// counted.
    pub fn max_log_lines(mut self, lines: u64) -> Self {
        self.settings.log_limit.max_lines = lines;
        self
    }

    /// How many bytes of log text one execution may keep (default 64 MiB), counted like
    /// [`max_log_lines`](Self::max_log_lines); whichever limit comes first applies.
    pub fn max_log_bytes(mut self, bytes: u64) -> Self {
        self.settings.log_limit.max_bytes = bytes;
        self
    }

    /// How many transcript items one execution may keep (default 100,000): past it, one `system` line says so and
    /// later new items are dropped, while updates of the items kept still pass and the run goes on.
    pub fn max_items(mut self, items: u64) -> Self {
        self.settings.log_limit.max_items = items;
        self
    }

    /// How many bytes of transcript items one execution may keep (default 64 MiB): each item's id and text as it
    /// now stands (an update replaces its item's count). Past it, one `system` line says so and later new items are
    /// dropped; an update of an item kept still passes if it does not grow the total past the limit.
    pub fn max_item_bytes(mut self, bytes: u64) -> Self {
        self.settings.log_limit.max_item_bytes = bytes;
        self
    }

    /// The largest output a run may store, in bytes of JSON (default 1 MiB): a larger one fails the run with an
    /// error that names the limit.
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_output_bytes = bytes;
        self
    }

    /// How remote backends reach the server for callbacks (`http://host:port`, no trailing slash); without it, runs
    /// get no callback URL.
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.settings.public_url = url.map(|url| url.trim_end_matches('/').to_owned());
        self
    }

    /// What models cost (`[[prices]]`): usage reported without a cost is priced by its model; a model without a price
    /// has no cost, never a guessed one.
    pub fn prices(mut self, prices: Vec<Price>) -> Self {
        self.settings.prices = prices;
        self
    }

    /// Daily budgets in US dollars of tokens, by token name (`daily_cost_usd` of `[[auth.tokens]]`): a trigger, retry
    /// or continue by a token whose executions spent it today is refused, and a run that crosses it is stopped.
    pub fn token_budgets(mut self, budgets: HashMap<String, f64>) -> Self {
        self.settings.token_budgets = budgets;
        self
    }

    /// This instance's id (`DASHBOARD_INSTANCE_ID`), recorded on each execution it runs; by default a random one.
    pub fn instance_id(mut self, id: Option<String>) -> Self {
        self.instance_id = id;
        self
    }

    /// Makes this engine one of several instances sharing the store (whose [`Cluster`](dashboard_store::Cluster)
    /// side `settings` holds): it claims queued work from the store under a lease instead of its own queue, renews
    /// its leases, ends the work of instances that died, and hears cancels, decisions and events of the others.
    pub fn cluster(mut self, settings: ClusterSettings) -> Self {
        self.cluster = Some(settings);
        self
    }

    /// Builds the dashboard. Must be called inside a tokio runtime: runs are spawned on it.
    ///
    /// # Panics
    /// Without a store, or outside a tokio runtime: both are programming errors of the embedder.
    pub fn build(self) -> Dashboard {
        let store = self.store.expect("Dashboard::builder() needs a store: call .store(...)");
        let runtime =
            Handle::try_current().expect("Dashboard::build() must be called inside a tokio runtime");
        let (bus, _) = broadcast::channel(self.bus_capacity);
        let inner = Arc::new(Inner {
            store,
            backends: self.backends,
            bus,
            compiled: CompiledCache::default(),
            functions: FunctionCache::default(),
            scheduler: Mutex::new(Scheduler::new(self.max_concurrency)),
            runs: Mutex::new(HashMap::new()),
            approval_waiters: Mutex::new(HashMap::new()),
            runs_ended: Notify::new(),
            is_accepting: AtomicBool::new(true),
            schedules_changed: Arc::default(),
            callback_key: match &self.cluster {
                Some(cluster) => CallbackKey::from_secret(cluster.secret),
                None => CallbackKey::generate(),
            },
            identity: Identity::new(self.instance_id),
            cluster: self.cluster.map(Membership::new),
            settings: self.settings,
            metrics: EngineMetrics::default(),
            store_probe: StoreProbe::default(),
            runtime,
        });
        cluster::start(&inner);
        Dashboard { inner }
    }
}
