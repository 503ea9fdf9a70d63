//! `GET /metrics`: the Prometheus text format, written by hand (the format is a few lines of text), and the
//! middleware that counts HTTP requests by method, route pattern and status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Mutex;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use dashboard_core::ExecutionStatus;
use dashboard_store::{HistogramSnapshot, SpendQuery};

use crate::state::{AppState, State};

/// The label of requests that matched no route: raw paths would let any client grow the label set without end.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The label of a method HTTP does not define: a client may send any token as a method, and each would otherwise
/// become a series of its own.
const OTHER_METHOD: &str = "other";

/// HTTP requests served, by method, route pattern (`/api/executions/{id}`, never a raw path) and status. Every label
/// comes from a closed set — the methods HTTP defines, the route table's patterns, the statuses the server answers
/// with — so no client can grow the page.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
}

impl HttpMetrics {
    fn record(&self, method: &'static str, route: String, status: u16) {
        let mut requests = self.requests.lock().expect("HTTP metrics lock poisoned");
        *requests.entry((method, route, status)).or_insert(0) += 1;
    }

    fn snapshot(&self) -> Vec<((&'static str, String, u16), u64)> {
        let requests = self.requests.lock().expect("HTTP metrics lock poisoned");
        requests.iter().map(|(key, count)| (key.clone(), *count)).collect()
    }
}

/// The middleware that counts every request in [`HttpMetrics`].
pub struct CountRequests(pub web::Data<HttpMetrics>);

impl<S, B> Transform<S, ServiceRequest> for CountRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = CountRequestsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CountRequestsService { service, metrics: self.0.clone() }))
    }
}

/// [`CountRequests`] around one service.
pub struct CountRequestsService<S> {
    service: S,
    metrics: web::Data<HttpMetrics>,
}

impl<S, B> Service<ServiceRequest> for CountRequestsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // A pattern comes from the route table only; an unknown path matches none.
        let route = request.match_pattern().unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
        let method = method_label(request.method());
        let metrics = self.metrics.clone();
        let response = self.service.call(request);
        Box::pin(async move {
            let response = response.await;
            let status = match &response {
                Ok(response) => response.status(),
                Err(error) => error.as_response_error().status_code(),
            };
            metrics.record(method, route, status.as_u16());
            response
        })
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(state: State, http: Option<web::Data<HttpMetrics>>) -> HttpResponse {
    let dashboard = &state.dashboard;
    let mut text = String::with_capacity(8 * 1024);

    header(&mut text, "dashboard_executions", "gauge", "Executions in the store, by status.");
    match dashboard.store().count_by_status().await {
        Ok(counts) => {
            for status in ExecutionStatus::ALL {
                let _ = writeln!(text, "dashboard_executions{{status=\"{status}\"}} {}", counts.get(status));
            }
        }
        Err(error) => log::warn!("metrics: could not count executions: {error}"),
    }

    header(&mut text, "dashboard_approvals_pending", "gauge", "Approvals waiting for a person's decision.");
    match dashboard.store().count_pending_approvals().await {
        Ok(count) => {
            let _ = writeln!(text, "dashboard_approvals_pending {count}");
        }
        Err(error) => log::warn!("metrics: could not count pending approvals: {error}"),
    }

    spend_today(&mut text, &state).await;

    let engine = dashboard.metrics();
    let counts = engine.status_counts();
    let families = [
        ("dashboard_executions_triggered_total", "Executions accepted since start, by backend."),
        ("dashboard_executions_started_total", "Executions handed to their backend since start, by backend."),
        ("dashboard_executions_finished_total", "Executions that ended since start, by backend and status."),
    ];
    for (name, help) in families {
        header(&mut text, name, "counter", help);
        for count in &counts {
            let backend = escape(&count.backend);
            let line = match (name, count.status) {
                ("dashboard_executions_triggered_total", ExecutionStatus::Queued)
                | ("dashboard_executions_started_total", ExecutionStatus::Running) => {
                    format!("{name}{{backend=\"{backend}\"}} {}", count.count)
                }
                ("dashboard_executions_finished_total", status) if status.is_terminal() => {
                    format!("{name}{{backend=\"{backend}\",status=\"{status}\"}} {}", count.count)
                }
                _ => continue,
            };
            text.push_str(&line);
            text.push('\n');
        }
    }

    let duration = engine.duration_seconds();
    histogram(
        &mut text,
        "dashboard_execution_duration_seconds",
        "Run time of finished executions.",
        &duration,
    );

    header(
        &mut text,
        "dashboard_store_write_failures_total",
        "counter",
        "Store writes of the engine that failed (a full disk, a read-only file), retries included.",
    );
    let _ = writeln!(text, "dashboard_store_write_failures_total {}", engine.store_write_failures());
    header(
        &mut text,
        "dashboard_store_write_episodes_total",
        "counter",
        "Episodes in which the store refused the engine's writes (each logged once when it begins and once when it ends).",
    );
    let _ = writeln!(text, "dashboard_store_write_episodes_total {}", engine.store_write_episodes());

    let gauges = [
        ("dashboard_queue_depth", "Executions waiting for a free slot.", dashboard.queue_depth() as i64),
        ("dashboard_running_executions", "Executions running now.", dashboard.running_count() as i64),
        (
            "dashboard_sse_clients",
            "Clients connected to a live stream (SSE).",
            engine.sse_clients.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "dashboard_store_writes_failing",
            "1 while the store refuses the engine's writes (a full disk, a read-only file), else 0.",
            i64::from(engine.store_write_trouble().is_some()),
        ),
        (
            "dashboard_store_held_executions",
            "Executions holding a change the store has not taken yet; retried until it lands.",
            engine.held_executions(),
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut text, name, "gauge", help);
        let _ = writeln!(text, "{name} {value}");
    }

    instances(&mut text, dashboard).await;

    let store = dashboard.store().stats();
    histogram(
        &mut text,
        "dashboard_store_commit_seconds",
        "Time of one group commit of the store's writer, from BEGIN to COMMIT.",
        &store.commit_seconds,
    );
    histogram(
        &mut text,
        "dashboard_store_commit_batch_size",
        "Changes that shared one commit.",
        &store.batch_size,
    );

    if let Some(http) = http {
        let name = "dashboard_http_requests_total";
        header(&mut text, name, "counter", "HTTP requests served, by method, route pattern and status.");
        for ((method, route, status), count) in http.snapshot() {
            let (method, route) = (escape(method), escape(&route));
            let _ =
                writeln!(text, "{name}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}");
        }
    }

    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}

/// What each function's executions and each token's spent today (the UTC day, as budgets count it). Functions and
/// tokens are closed sets — the registered functions and the configured tokens — so a label is never a name a client
/// made up: spend of a deleted function is left out. The functions' figures come from one `daily_spend` query per
/// scrape; each token's from one `spend_since`.
async fn spend_today(text: &mut String, state: &AppState) {
    let store = state.dashboard.store();
    let since = dashboard_core::start_of_utc_day(dashboard_core::now());
    let spend = match (store.list_functions().await, store.daily_spend(since).await) {
        (Ok(functions), Ok(daily)) => {
            let mut spend: BTreeMap<String, (f64, u64)> =
                functions.into_iter().map(|function| (function.name, (0.0, 0))).collect();
            for entry in daily {
                if let Some((cost, tokens)) = spend.get_mut(&entry.function) {
                    *cost += entry.spend.cost_usd;
                    *tokens = tokens.saturating_add(entry.spend.tokens);
                }
            }
            Some(spend)
        }
        (Err(error), _) | (_, Err(error)) => {
            log::warn!("metrics: could not read today's spend: {error}");
            None
        }
    };
    if let Some(spend) = spend {
        // Each function's figures as text: dollars, then tokens.
        let figures: Vec<(String, String, String)> = spend
            .into_iter()
            .map(|(function, (cost, tokens))| (escape(&function), cost.to_string(), tokens.to_string()))
            .collect();
        let name = "dashboard_spend_usd_today";
        header(
            text,
            name,
            "gauge",
            "What each function's executions created today (UTC) cost, in US dollars.",
        );
        for (function, cost, _) in &figures {
            let _ = writeln!(text, "{name}{{function=\"{function}\"}} {cost}");
        }
        let name = "dashboard_spend_tokens_today";
        header(text, name, "gauge", "The tokens each function's executions created today (UTC) used.");
        for (function, _, tokens) in &figures {
            let _ = writeln!(text, "{name}{{function=\"{function}\"}} {tokens}");
        }
    }
    let tokens = &state.config.auth_tokens;
    if tokens.is_empty() {
        return;
    }
    let name = "dashboard_token_spend_usd_today";
    header(text, name, "gauge", "What the executions each token triggered today (UTC) cost, in US dollars.");
    for token in tokens {
        let query = SpendQuery { since, function: None, triggered_by: Some(token.name.clone()) };
        match store.spend_since(&query).await {
            Ok(spent) => {
                let _ = writeln!(text, "{name}{{token=\"{}\"}} {}", escape(&token.name), spent.cost_usd);
            }
            Err(error) => log::warn!("metrics: could not read the spend of token {}: {error}", token.name),
        }
    }
}

/// Which instance answers (`dashboard_instance_info`, so that a scrape through a load balancer says whose figures
/// these are), and how many executions each live instance sharing the store was running at its last heartbeat — one
/// read of the instances per scrape; on a store of its own, this instance alone.
async fn instances(text: &mut String, dashboard: &dashboard_engine::Dashboard) {
    let name = "dashboard_instance_info";
    header(text, name, "gauge", "The instance that answered this scrape (DASHBOARD_INSTANCE_ID); always 1.");
    let _ = writeln!(text, "{name}{{instance=\"{}\"}} 1", escape(dashboard.instance_id()));
    match dashboard.instances().await {
        Ok(instances) => {
            let name = "dashboard_instance_running_executions";
            header(
                text,
                name,
                "gauge",
                "Executions each live instance sharing the store was running at its last heartbeat.",
            );
            for instance in instances {
                let _ =
                    writeln!(text, "{name}{{instance=\"{}\"}} {}", escape(&instance.id), instance.running);
            }
        }
        Err(error) => log::warn!("metrics: could not list the instances: {error}"),
    }
}

/// The method's label: its name when HTTP defines it (RFC 9110 §9 and PATCH), else [`OTHER_METHOD`].
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN.iter().find(|known| *known == method).map_or(OTHER_METHOD, |known| known.as_str())
}

fn header(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(text: &mut String, name: &str, help: &str, snapshot: &HistogramSnapshot) {
    header(text, name, "histogram", help);
    for (bound, count) in snapshot.bounds.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let total = snapshot.cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(text, "{name}_sum {}\n{name}_count {}", snapshot.sum, snapshot.count);
}

/// Escapes a label value as the text format asks: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_http_does_not_define_share_one_label() {
        let label = |name: &str| method_label(&Method::from_bytes(name.as_bytes()).expect("a method token"));
        assert_eq!(label("GET"), "GET");
        assert_eq!(label("PATCH"), "PATCH");
        assert_eq!(label("FOOBARBAZ"), "other");
        assert_eq!(label("get"), "other");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_histogram_ends_with_inf_sum_and_count() {
        let snapshot =
            HistogramSnapshot { bounds: vec![0.5, 1.0], cumulative: vec![1, 2, 3], count: 3, sum: 4.5 };
        let mut text = String::new();
        histogram(&mut text, "h", "help", &snapshot);
        assert!(
            text.contains("h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.ends_with("h_sum 4.5\nh_count 3\n"), "{text}");
    }
}
