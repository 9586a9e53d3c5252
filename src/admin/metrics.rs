//! Metric names (one place) and the recording helpers the request path
//! calls. Exported in Prometheus text format on the admin listener.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::server::stack::AuthOutcome;

pub const REQUESTS: &str = "tilegate_requests_total";
pub const UPSTREAM_DURATION: &str = "tilegate_upstream_duration_seconds";
pub const IN_FLIGHT: &str = "tilegate_in_flight_requests";
pub const CACHE: &str = "tilegate_auth_cache_total";
pub const CACHE_ENTRIES: &str = "tilegate_auth_cache_entries";
pub const REVOCATIONS: &str = "tilegate_revocations";
pub const CONNECTIONS: &str = "tilegate_connections_open";
pub const CONNECTIONS_REFUSED: &str = "tilegate_connections_refused_total";
pub const RELOADS: &str = "tilegate_config_reloads_total";
pub const TOKENS_ISSUED: &str = "tilegate_tokens_issued_total";
pub const AUTH_FAILURES_THROTTLED: &str = "tilegate_auth_throttled_total";

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder (installed once; tests start several
/// gateways in one process).
pub fn handle() -> &'static PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(h) => h,
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

fn status_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        206 => "206",
        101 => "101",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        x if x < 300 => "2xx",
        x if x < 400 => "3xx",
        x if x < 500 => "4xx",
        _ => "5xx",
    }
}

/// One finished request. Labels share the route's `Arc<str>` (no
/// allocation per request).
pub fn request(route: Option<&std::sync::Arc<str>>, status: StatusCode, outcome: Option<AuthOutcome>) {
    let route = match route {
        Some(r) => metrics::SharedString::from_shared(r.clone()),
        None => metrics::SharedString::const_str("-"),
    };
    counter!(REQUESTS, "route" => route, "status" => status_label(status), "auth" => outcome.map(AuthOutcome::as_str).unwrap_or("none")).increment(1);
}

pub fn upstream_latency(upstream: &std::sync::Arc<str>, d: Duration) {
    histogram!(UPSTREAM_DURATION, "upstream" => metrics::SharedString::from_shared(upstream.clone()))
        .record(d.as_secs_f64());
}

pub fn in_flight(delta: i64) {
    gauge!(IN_FLIGHT).increment(delta as f64);
}

pub fn cache_hit() {
    counter!(CACHE, "result" => "hit").increment(1);
}
pub fn cache_miss() {
    counter!(CACHE, "result" => "miss").increment(1);
}
pub fn cache_negative_hit() {
    counter!(CACHE, "result" => "negative_hit").increment(1);
}

pub fn connection_opened() {
    gauge!(CONNECTIONS).increment(1.0);
}
pub fn connection_closed() {
    gauge!(CONNECTIONS).decrement(1.0);
}
pub fn connection_refused() {
    counter!(CONNECTIONS_REFUSED).increment(1);
}

pub fn reload(ok: bool) {
    counter!(RELOADS, "result" => if ok { "ok" } else { "refused" }).increment(1);
}

pub fn token_issued(grant: &'static str) {
    counter!(TOKENS_ISSUED, "grant" => grant).increment(1);
}

pub fn auth_throttled() {
    counter!(AUTH_FAILURES_THROTTLED).increment(1);
}

/// Drain the exporter's histogram buffers every few seconds: without it
/// they grow with every recorded sample until someone scrapes `/metrics`.
pub async fn upkeep_loop(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle().run_upkeep(),
            _ = shutdown.changed() => return,
        }
    }
}

/// Gauges read at scrape time.
pub fn set_scrape_gauges(cache_entries: u64, revocations: usize) {
    gauge!(CACHE_ENTRIES).set(cache_entries as f64);
    gauge!(REVOCATIONS).set(revocations as f64);
}
