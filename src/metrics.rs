//! Metric names (one place), label enums and the recording helpers every
//! layer calls. A leaf: it imports nothing of ours. The admin listener
//! only renders it (Prometheus text format).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "tilegate_requests_total";
pub const UPSTREAM_DURATION: &str = "tilegate_upstream_duration_seconds";
pub const IN_FLIGHT: &str = "tilegate_in_flight_requests";
pub const CACHE: &str = "tilegate_auth_cache_total";
pub const CACHE_ENTRIES: &str = "tilegate_auth_cache_entries";
pub const REVOCATIONS: &str = "tilegate_revocations";
pub const CONNECTIONS: &str = "tilegate_connections_open";
pub const CONNECTIONS_REFUSED: &str = "tilegate_connections_refused_total";
pub const CONNECTIONS_REFUSED_PER_IP: &str = "tilegate_connections_refused_per_ip_total";
pub const CONNECTIONS_TIMED_OUT: &str = "tilegate_connections_timed_out_total";
pub const RELOADS: &str = "tilegate_config_reloads_total";
pub const TOKENS_ISSUED: &str = "tilegate_tokens_issued_total";
pub const AUTH_FAILURES_THROTTLED: &str = "tilegate_auth_throttled_total";
pub const REQUEST_BODY_TIMEOUTS: &str = "tilegate_request_body_timeouts_total";
pub const REQUEST_BODIES_LINGERED: &str = "tilegate_request_bodies_lingered_total";
pub const UPSTREAM_BODY_TIMEOUTS: &str = "tilegate_upstream_body_timeouts_total";
pub const STREAMS_ENDED: &str = "tilegate_streams_ended_total";
pub const TILE_GRANTS: &str = "tilegate_tile_grant_checks_total";
pub const WORKER_CONNECTIONS: &str = "tilegate_worker_connections_total";

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

/// Status labels of the request counter; anything else is counted by class.
const STATUS_LABELS: [&str; 24] = [
    "101", "200", "201", "204", "206", "301", "302", "304", "400", "401", "403", "404", "405", "413", "429", "500",
    "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx",
];

fn status_index(s: StatusCode) -> usize {
    match s.as_u16() {
        101 => 0,
        200 => 1,
        201 => 2,
        204 => 3,
        206 => 4,
        301 => 5,
        302 => 6,
        304 => 7,
        400 => 8,
        401 => 9,
        403 => 10,
        404 => 11,
        405 => 12,
        413 => 13,
        429 => 14,
        500 => 15,
        502 => 16,
        503 => 17,
        504 => 18,
        x => 18 + (x / 100).clamp(1, 5) as usize,
    }
}

/// How a request's token check ended: the `auth` label of the request
/// counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Public,
    Allowed,
    Missing,
    Invalid,
    Forbidden,
}

impl AuthOutcome {
    /// Every outcome, in label order.
    pub const ALL: [AuthOutcome; 5] = [
        AuthOutcome::Public,
        AuthOutcome::Allowed,
        AuthOutcome::Missing,
        AuthOutcome::Invalid,
        AuthOutcome::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Public => "public",
            AuthOutcome::Allowed => "allowed",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Invalid => "invalid",
            AuthOutcome::Forbidden => "forbidden",
        }
    }

    /// Position in [`AuthOutcome::ALL`]; exhaustive, so a new variant
    /// cannot compile without its own index.
    const fn index(self) -> usize {
        match self {
            AuthOutcome::Public => 0,
            AuthOutcome::Allowed => 1,
            AuthOutcome::Missing => 2,
            AuthOutcome::Invalid => 3,
            AuthOutcome::Forbidden => 4,
        }
    }
}

/// Auth labels: index 0 is "none" (the request never reached a token check).
fn outcome_index(o: Option<AuthOutcome>) -> usize {
    o.map_or(0, |o| 1 + o.index())
}

const OUTCOMES: usize = AuthOutcome::ALL.len() + 1;

#[cfg(test)]
#[test]
fn every_outcome_has_its_own_counter_slot() {
    let mut seen: Vec<usize> = AuthOutcome::ALL.iter().map(|&o| outcome_index(Some(o))).collect();
    seen.push(outcome_index(None));
    seen.sort_unstable();
    assert_eq!(seen, (0..OUTCOMES).collect::<Vec<_>>());
    for (i, o) in AuthOutcome::ALL.iter().enumerate() {
        assert_eq!(o.index(), i);
    }
}

/// One route's request counters (one per status label and auth outcome),
/// resolved on first use, after the recorder is installed, so a request
/// costs an atomic increment and no registry lookup.
pub struct RouteStats {
    name: Arc<str>,
    counters: Box<[OnceLock<Counter>]>,
}

impl std::fmt::Debug for RouteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteStats").field("name", &self.name).finish()
    }
}

impl RouteStats {
    pub fn new(name: Arc<str>) -> Arc<RouteStats> {
        Arc::new(RouteStats {
            name,
            counters: (0..STATUS_LABELS.len() * OUTCOMES).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The inline token endpoints, counted as route "inline".
    pub fn inline() -> &'static Arc<RouteStats> {
        static S: OnceLock<Arc<RouteStats>> = OnceLock::new();
        S.get_or_init(|| RouteStats::new(Arc::from("inline")))
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn record(&self, status: StatusCode, outcome: Option<AuthOutcome>) {
        let (s, o) = (status_index(status), outcome_index(outcome));
        self.counters[s * OUTCOMES + o]
            .get_or_init(|| {
                let _ = handle();
                counter!(REQUESTS, "route" => SharedString::from_shared(self.name.clone()), "status" => STATUS_LABELS[s], "auth" => outcome_label(outcome))
            })
            .increment(1);
    }
}

fn outcome_label(o: Option<AuthOutcome>) -> &'static str {
    o.map(AuthOutcome::as_str).unwrap_or("none")
}

/// One finished request; `route` is `None` when no route matched.
pub fn request(route: Option<&RouteStats>, status: StatusCode, outcome: Option<AuthOutcome>) {
    match route {
        Some(r) => r.record(status, outcome),
        None => counter!(REQUESTS, "route" => "-", "status" => STATUS_LABELS[status_index(status)], "auth" => outcome_label(outcome)).increment(1),
    }
}

/// One upstream's latency histogram, resolved on first use.
pub struct UpstreamStats {
    label: Arc<str>,
    latency: OnceLock<Histogram>,
}

impl UpstreamStats {
    pub fn new(name: &str) -> UpstreamStats {
        UpstreamStats {
            label: Arc::from(name),
            latency: OnceLock::new(),
        }
    }

    pub fn latency(&self, d: Duration) {
        self.latency
            .get_or_init(|| {
                let _ = handle();
                histogram!(UPSTREAM_DURATION, "upstream" => SharedString::from_shared(self.label.clone()))
            })
            .record(d.as_secs_f64());
    }
}

/// How a tile-grant check on a route with tile coordinates ended: the
/// `outcome` label of `tilegate_tile_grant_checks_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantOutcome {
    /// The tile is inside the token's grant.
    Inside,
    /// Outside the grant's zoom range.
    Zoom,
    /// Outside the grant's area.
    Area,
    /// Not one of the grant's layers.
    Layer,
    /// The path names no tile (coordinates not numbers or out of range).
    NoTile,
}

impl GrantOutcome {
    /// Every outcome, in label order.
    pub const ALL: [GrantOutcome; 5] = [
        GrantOutcome::Inside,
        GrantOutcome::Zoom,
        GrantOutcome::Area,
        GrantOutcome::Layer,
        GrantOutcome::NoTile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantOutcome::Inside => "inside",
            GrantOutcome::Zoom => "outside_zoom",
            GrantOutcome::Area => "outside_area",
            GrantOutcome::Layer => "outside_layer",
            GrantOutcome::NoTile => "no_tile",
        }
    }

    /// Position in [`GrantOutcome::ALL`]; exhaustive, so a new variant
    /// cannot compile without its own index.
    const fn index(self) -> usize {
        match self {
            GrantOutcome::Inside => 0,
            GrantOutcome::Zoom => 1,
            GrantOutcome::Area => 2,
            GrantOutcome::Layer => 3,
            GrantOutcome::NoTile => 4,
        }
    }
}

/// One tile-grant check (a token with a grant on a route with tile
/// coordinates): a resolved counter per outcome, so an atomic increment.
pub fn tile_grant(o: GrantOutcome) {
    static C: OnceLock<[Counter; GrantOutcome::ALL.len()]> = OnceLock::new();
    C.get_or_init(|| {
        let _ = handle();
        GrantOutcome::ALL.map(|o| counter!(TILE_GRANTS, "outcome" => o.as_str()))
    })[o.index()]
    .increment(1);
}

#[cfg(test)]
#[test]
fn every_grant_outcome_has_its_own_counter() {
    for (i, o) in GrantOutcome::ALL.iter().enumerate() {
        assert_eq!(o.index(), i);
    }
}

/// Handles of the unlabelled (or fixed-label) metrics the request path
/// touches on every request.
struct Hot {
    in_flight: Gauge,
    hit: Counter,
    miss: Counter,
    negative: Counter,
}

fn hot() -> &'static Hot {
    static H: OnceLock<Hot> = OnceLock::new();
    H.get_or_init(|| {
        let _ = handle();
        Hot {
            in_flight: gauge!(IN_FLIGHT),
            hit: counter!(CACHE, "result" => "hit"),
            miss: counter!(CACHE, "result" => "miss"),
            negative: counter!(CACHE, "result" => "negative_hit"),
        }
    })
}

/// Counts a request in flight until dropped (a cancelled request too).
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> InFlight {
        hot().in_flight.increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        hot().in_flight.decrement(1.0);
    }
}

pub fn cache_hit() {
    hot().hit.increment(1);
}
pub fn cache_miss() {
    hot().miss.increment(1);
}
pub fn cache_negative_hit() {
    hot().negative.increment(1);
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
/// A connection refused because its address had `max_connections_per_ip`.
pub fn connection_refused_per_ip() {
    counter!(CONNECTIONS_REFUSED_PER_IP).increment(1);
}
/// A connection the gateway closed for missing the handshake deadline
/// (`phase="handshake"`), for idling (`phase="idle"`) or for a client that
/// took none of its responses (`phase="send"`).
pub fn connection_timed_out(phase: &'static str) {
    counter!(CONNECTIONS_TIMED_OUT, "phase" => phase).increment(1);
}

/// The counter of connections per-core worker `worker` accepted (resolved
/// once per worker; one add per connection).
pub fn worker_connections(worker: usize) -> Counter {
    counter!(WORKER_CONNECTIONS, "worker" => worker.to_string())
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

/// A client's request body went `server.body_read_timeout` without a byte.
pub fn request_body_timeout() {
    counter!(REQUEST_BODY_TIMEOUTS).increment(1);
}

/// The rest of a request body is being drained after an early answer.
pub fn request_body_lingered() {
    counter!(REQUEST_BODIES_LINGERED).increment(1);
}

/// An upstream's response body went its `body_read_timeout` without a byte.
pub fn upstream_body_timeout(upstream: &str) {
    counter!(UPSTREAM_BODY_TIMEOUTS, "upstream" => upstream.to_owned()).increment(1);
}

/// A stream (WebSocket or streaming body) was closed because its token
/// ended (`reason`: "expired" or "revoked").
pub fn stream_ended(reason: &'static str) {
    counter!(STREAMS_ENDED, "reason" => reason).increment(1);
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
