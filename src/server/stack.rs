//! The request path, composed in one place, outermost first:
//!
//! 1. `Telemetry` (access log + metrics): outermost, so it sees every
//!    response, the gateway's own refusals included.
//! 2. `GatewayService` → [`route_request`], which reads top-down as the
//!    phases, each owned by its layer: normalise the path (`routing`) →
//!    inline token endpoint, a route-table target (`issue`) → one host
//!    (`routing`) → CORS preflight (`routing`) → route match (`routing`) →
//!    authorize: extract, verify through the cache, the route's rule, the
//!    per-subject limiter (`auth`) → body cap (`proxy`) → target rewrite
//!    (`routing`) → headers (`proxy`) → forward (`proxy`) → upgrade splice
//!    (`proxy`).
//!
//! Every step returns a ready `Response` on refusal (its layer's error,
//! through `rescue`), so the layers around see ordinary responses; the
//! service never fails.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt as _;
use http::header::{HOST, ORIGIN};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tower::{Layer, Service};

use super::rescue::{self, IntoResponse};
use super::ConnInfo;
use crate::auth::{self, extract, AuthError};
use crate::body::ClientBody;
use crate::http::{Body, Resp};
use crate::metrics::{AuthOutcome, InFlight, RouteStats};
use crate::net::trusted;
use crate::proxy::{self, ForwardCtx, ProxyError, ReqBody};
use crate::routing::{self, normalize, Policy, PreflightRefusal, Route, RouteMiss, TileRefusal};
use crate::state::{Gateway, Runtime};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Build the per-connection service.
pub fn build(gw: Arc<Gateway>, conn: ConnInfo) -> Telemetry<GatewayService> {
    let access_log = gw.runtime.load().config.server.access_log;
    TelemetryLayer { access_log }.layer(GatewayService {
        gw,
        conn: Arc::new(conn),
    })
}

/// What the inner service hands to telemetry: the response, the route it
/// took (for the request counter) and the auth outcome.
pub struct Served {
    pub resp: Resp,
    pub route: Option<Arc<RouteStats>>,
    pub auth: Option<AuthOutcome>,
}

impl Served {
    fn new(resp: Resp) -> Served {
        Served {
            resp,
            route: None,
            auth: None,
        }
    }
    fn on(mut self, route: &Arc<RouteStats>) -> Served {
        self.route = Some(route.clone());
        self
    }
}

// === impl TelemetryLayer ===

#[derive(Clone, Copy)]
pub struct TelemetryLayer {
    access_log: bool,
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;
    fn layer(&self, inner: S) -> Telemetry<S> {
        Telemetry {
            inner,
            access_log: self.access_log,
        }
    }
}

#[derive(Clone)]
pub struct Telemetry<S> {
    inner: S,
    access_log: bool,
}

impl<S> Service<Request<Incoming>> for Telemetry<S>
where
    S: Service<Request<Incoming>, Response = Served, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Resp;
    type Error = Infallible;
    type Future = TelemetryFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        // Only the path is logged, never the query: it may hold a token.
        let log = self
            .access_log
            .then(|| (Instant::now(), req.method().clone(), req.uri().path().to_owned()));
        let in_flight = InFlight::enter();
        TelemetryFuture {
            inner: self.inner.call(req),
            log,
            _in_flight: in_flight,
        }
    }
}

/// The inner service's future plus what the access log needs; not boxed
/// again (the inner future already is).
pub struct TelemetryFuture<F> {
    inner: F,
    log: Option<(Instant, Method, String)>,
    _in_flight: InFlight,
}

impl<F> Future for TelemetryFuture<F>
where
    F: Future<Output = Result<Served, Infallible>> + Unpin,
{
    type Output = Result<Resp, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(served) = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        let Served { resp, route, auth } = served;
        crate::metrics::request(route.as_deref(), resp.status(), auth);
        if let Some((start, method, path)) = this.log.take() {
            tracing::info!(
                target: "access",
                method = %method,
                path = %path,
                status = resp.status().as_u16(),
                route = route.as_ref().map(|r| &**r.name()).unwrap_or("-"),
                auth = auth.map(AuthOutcome::as_str).unwrap_or("-"),
                duration_us = start.elapsed().as_micros() as u64,
            );
        }
        Poll::Ready(Ok(resp))
    }
}

// === impl GatewayService ===

#[derive(Clone)]
pub struct GatewayService {
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
}

impl Service<Request<Incoming>> for GatewayService {
    type Response = Served;
    type Error = Infallible;
    type Future = futures_util::future::Map<BoxFuture<Served>, fn(Served) -> Result<Served, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let gw = self.gw.clone();
        let conn = self.conn.clone();
        // Boxed as it is made: wrapping it in another async block first
        // would copy the (several KiB) future once more per request. The
        // box is allocated first and the future written into it, which
        // lets the compiler build it there instead of on the stack and
        // then copying it (`Box::pin(handle(…))` evaluates the future
        // before it allocates).
        let served: BoxFuture<Served> = boxed_in_place(|| handle(gw, conn, req));
        served.map(Ok)
    }
}

/// A box allocated first and the future then written into it (see
/// `GatewayService::call`).
#[inline(always)]
fn boxed_in_place<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// The request path's futures are plain `fn`s returning `async move`
/// blocks rather than `async fn`s: an `async fn` keeps its by-value
/// arguments twice in its state (rust-lang/rust#62958), and every level's
/// state is copied once more as the level above awaits it.
fn handle(gw: Arc<Gateway>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> impl Future<Output = Served> + Send {
    let rt = gw.runtime.load_full();
    let (parts, body) = req.into_parts();
    // The body under `server.body_read_timeout`; whatever is left of it when
    // the response is ready (an early refusal) lingers (`crate::body`).
    let body = ClientBody::new(body, &parts, &rt.config.server);
    // The forward step: the route's upstream, then the upgrade splice. Not
    // an async block around `route_request`: its future is the one boxed
    // per request, with no level above it to be copied into.
    route_request(gw, rt, conn, parts, body, tower::service_fn(forward_upstream))
}

/// The request path, top-down: each step hands the request on or answers
/// it. Every refusal is its layer's error, answered by `rescue`.
///
/// It owns what it is handed, so that its future is the request's whole
/// future (boxed once, in `GatewayService::call`), and every answer leaves
/// through one exit that closes an HTTP/1 connection whose request body
/// was left unread (`crate::body::close_if_unfinished`).
#[allow(clippy::manual_async_fn)] // not an async fn: rust-lang/rust#62958
fn route_request<F>(
    gw: Arc<Gateway>,
    rt: Arc<Runtime>,
    conn: Arc<ConnInfo>,
    parts: http::request::Parts,
    mut body: ClientBody,
    forward: F,
) -> impl Future<Output = Served> + Send
where
    F: Service<Forward, Response = Resp, Error = ProxyError> + Send,
    F::Future: Send,
{
    async move {
        let runtime = rt;
        let (gw, rt, conn): (&Gateway, &Runtime, &ConnInfo) = (&gw, &runtime, &conn);
        let version = parts.version;
        let mut served = 'answer: {
            // Normalise the path before anything reads it, so no later step can be
            // fooled by `..` or `%2f`. (A Uri clone shares its bytes: the path may
            // borrow from it while `parts` moves on.)
            let uri = parts.uri.clone();
            let path = match normalize(uri.path()) {
                Ok(p) => p,
                Err(e) => break 'answer Served::new(e.into_response()),
            };
            // Inline token endpoints: route-table targets the gateway answers
            // itself, for any host, ahead of the routes (none can shadow them).
            if let Some(ep) = rt.routes.inline(&path) {
                drop(path);
                break 'answer serve_inline(gw, rt, conn, ep, parts, &mut body).await;
            }
            // One host: a request must not be routed on one host and read by the
            // backend as another.
            if let Err(e) = routing::one_host(&parts) {
                break 'answer Served::new(e.into_response());
            }
            let host = routing::host_of(&parts);
            // CORS preflight: answered without a token, for the route the
            // browser's real request would take.
            if let Some(m) = routing::preflight_method(&parts) {
                break 'answer preflight(rt.routes.resolve(host, &m, &path), &parts, &m);
            }
            // Route match: the most specific route for host, method and path (and
            // the same one for every reading a backend may make of the path).
            let route = match rt.routes.resolve(host, &parts.method, &path) {
                Ok(r) => r,
                Err(miss) => break 'answer Served::new(rescue::route_miss(miss, || rt.routes.allowed(host, &path))),
            };
            // Authorize and forward under the route's rule (inline, not a future
            // of its own: each level of future is copied once more per request).
            let origin = parts.headers.get(ORIGIN).cloned();
            let mut parts = parts;
            let path: &str = &path;
            let served = 'served: {
                let cfg = &rt.config;
                // Authorize first: nothing of a refused request is read or sent on.
                let (verified, new_query, outcome) = match authorize(gw, route, &parts, path).await {
                    Ok(a) => a,
                    Err(refused) => break 'served refused,
                };
                // Body cap on the declared length, before the upstream sees a byte.
                let max_body = cfg.server.max_body_bytes;
                if let Err(e) = proxy::declared_length_fits(&parts.headers, max_body) {
                    break 'served Served::new(e.into_response());
                }
                // Target rewrite: the normalised path, re-prefixed as configured, with
                // the query minus any token parameter.
                let pq = match routing::rewrite_target(route, path, &parts.uri, new_query.as_deref()) {
                    Ok(pq) => pq,
                    Err(e) => break 'served Served::new(e.into_response()),
                };
                // Shared-cache phase: a token route's responses are private to the
                // caller (`Some(vary on Authorization)`) unless it says otherwise.
                let private = (verified.is_some() && !route.shared_cache).then_some(new_query.is_none());
                // Only on a route that asks for it: what a stream keeps of its token,
                // so it can end when the token does.
                let life = route
                    .end_streams_with_token
                    .then_some(verified.as_deref())
                    .flatten()
                    .map(|v| proxy::stream_end::TokenLife::of(v, &gw.verifier.revocations));
                // A WebSocket upgrade keeps the client's pending upgrade for the splice.
                let upgrade = proxy::wants_upgrade(&parts.headers);
                let client_upgrade = if upgrade {
                    parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
                } else {
                    None
                };
                // Headers: hop-by-hop and spoofable ones removed, the verified
                // identity and the client's forwarding facts added, the token stripped.
                forward_headers(
                    conn,
                    route,
                    &mut parts,
                    verified.as_deref(),
                    new_query.is_none(),
                    upgrade,
                    cfg,
                );
                // Forward: the upstream's protocol, the client body streamed under its cap.
                let upstream = &rt.upstreams[route.upstream];
                parts.version = if upstream.cfg.http2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                };
                parts.extensions = http::Extensions::new();
                let body = if body.is_end_stream() {
                    ReqBody::Empty
                } else {
                    ReqBody::client(body.take(), max_body)
                };
                let fwd = Forward {
                    rt: runtime.clone(),
                    req: Request::from_parts(parts, body),
                    target: pq,
                    upstream: route.upstream,
                    client_upgrade,
                    life,
                };
                // Readiness first, as tower asks, then the call's future awaited
                // directly: `oneshot` would hold the (KiB-sized) future in a state
                // machine of its own, one more copy of it per request.
                let mut forward = forward;
                let sent = match std::future::poll_fn(|cx| forward.poll_ready(cx)).await {
                    Ok(()) => forward.call(fwd).await,
                    Err(e) => Err(e),
                };
                let mut resp = match sent {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                // Shared caches: applied to whatever the forward step answered.
                if let Some(vary) = private {
                    routing::make_private(resp.headers_mut(), vary);
                }
                Served {
                    resp,
                    route: None,
                    auth: Some(outcome),
                }
            };
            let mut served = served.on(&route.stats);
            // CORS headers on whatever the route answered, refusals included, so a
            // browser can read why.
            if let (Some(cors), Some(o)) = (&route.cors, &origin) {
                cors.decorate(served.resp.headers_mut(), o);
            }
            served
        };
        crate::body::close_if_unfinished(version, &body, &mut served.resp);
        served
    }
}

/// An inline token endpoint, on narrow handles to the replica's state.
async fn serve_inline(
    gw: &Gateway,
    rt: &Runtime,
    conn: &ConnInfo,
    ep: crate::issue::Endpoint,
    parts: http::request::Parts,
    body: &mut ClientBody,
) -> Served {
    // The client the failure throttle counts: behind a trusted proxy, the
    // one its X-Forwarded-For names.
    let client = match &conn.trusted {
        None => conn.client,
        Some(t) => trusted::client_of(t, conn.client, &parts.headers),
    };
    let ctx = crate::issue::Ctx {
        verifier: &gw.verifier,
        store: &gw.store,
        issuer: &gw.issuer,
        secrets: &gw.secrets,
        cfg: &rt.config,
        client,
    };
    // Boxed: the token endpoints' future is large, and without the box
    // every proxied request would carry (and copy) its size.
    let resp = Box::pin(crate::issue::serve(&ctx, ep, parts, body, |e| e.into_response())).await;
    Served::new(resp).on(RouteStats::inline())
}

fn preflight(found: Result<&Route, RouteMiss>, parts: &http::request::Parts, m: &Method) -> Served {
    let Ok(route) = found else {
        return Served::new(PreflightRefusal::NoRoute.into_response());
    };
    Served::new(preflight_for(route, parts, m)).on(&route.stats)
}

fn preflight_for(route: &Route, parts: &http::request::Parts, m: &Method) -> Resp {
    let Some(cors) = &route.cors else {
        return PreflightRefusal::RouteDisallows.into_response();
    };
    let origin = parts.headers.get(ORIGIN).expect("checked");
    if !cors.allows(origin.as_bytes()) {
        return PreflightRefusal::OriginDisallowed.into_response();
    }
    let mut r = crate::http::empty(StatusCode::NO_CONTENT);
    let h = r.headers_mut();
    cors.decorate(h, origin);
    use http::header::*;
    let methods = route.methods.header_value();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_str(if methods.is_empty() { m.as_str() } else { &methods })
            .unwrap_or(HeaderValue::from_static("GET")),
    );
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, cors.allow_headers.clone());
    h.insert(ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    r
}

fn refuse(e: AuthError) -> Served {
    let outcome = match e {
        AuthError::Missing => AuthOutcome::Missing,
        AuthError::Invalid(_) | AuthError::ApiKeyAsToken { .. } => AuthOutcome::Invalid,
        AuthError::InsufficientScope { .. } | AuthError::ReadOnly | AuthError::OriginNotAllowed => {
            AuthOutcome::Forbidden
        }
    };
    Served {
        resp: e.into_response(),
        route: None,
        auth: Some(outcome),
    }
}

/// A tile outside the token's grant: answered as the route says, kept
/// from shared caches (`vary`: the token came in a header).
fn refuse_tile(r: TileRefusal, vary: bool) -> Served {
    let mut resp = r.into_response();
    routing::make_private(resp.headers_mut(), vary);
    Served {
        resp,
        route: None,
        auth: Some(AuthOutcome::Forbidden),
    }
}

/// What authorizing a request under its route yields: the verified token
/// (none on a public route), the query to forward when a token parameter
/// was removed from it, and the outcome for the metrics.
type Authorized = (Option<Arc<auth::Verified>>, Option<String>, AuthOutcome);

/// The route's rule: a public route takes anyone (and removes tokens it
/// is not told to forward); a token route extracts the token, verifies it
/// through the cache, checks the route's rule and its per-subject limiter.
#[allow(clippy::result_large_err)] // the refusal is the response itself
async fn authorize(
    gw: &Gateway,
    route: &Route,
    parts: &http::request::Parts,
    path: &str,
) -> Result<Authorized, Served> {
    match &route.policy {
        // A token a client sends to a public route is not consumed, and is
        // not forwarded either (it would reach upstream logs), unless the
        // route says so.
        Policy::Public if route.forward_tokens => Ok((None, None, AuthOutcome::Public)),
        Policy::Public => Ok((
            None,
            extract::strip_query_tokens(parts.uri.query(), &route.token_query),
            AuthOutcome::Public,
        )),
        Policy::Token { .. } => {
            let ex = match extract::extract(&parts.headers, parts.uri.query(), &route.token_query) {
                Ok(Some(ex)) => ex,
                Ok(None) => return Err(refuse(AuthError::Missing)),
                Err(e) => return Err(refuse(e)),
            };
            // A cache hit needs no future at all; a miss (a signature check,
            // perhaps a key fetch) is boxed so the hit path stays small.
            let v = match gw.verifier.cached(&ex.token) {
                Ok(Some(v)) => v,
                Ok(None) => match Box::pin(gw.verifier.verify(&ex.token)).await {
                    Ok(v) => v,
                    Err(e) => return Err(refuse(e)),
                },
                Err(e) => return Err(refuse(e)),
            };
            if let Err(e) = auth::check_rule(&route.policy, &parts.method, &v) {
                return Err(refuse(e));
            }
            if let Some(l) = &route.limiter {
                if let Err(wait) = l.check(v.limit_key()) {
                    return Err(Served::new(ProxyError::RateLimited(wait).into_response()));
                }
            }
            // Origin binding phase (docs/grants.md).
            if let Err(e) = auth::check_origin(route.bind_origin, route.allow_missing_origin, &v, &parts.headers) {
                return Err(refuse(e));
            }
            // Tile grant phase (docs/grants.md): after the cache hit and the
            // rule, a few comparisons on the cached, projected grant.
            if let Err(r) = auth::check_tiles(route.tiles.as_deref(), &v, path) {
                return Err(refuse_tile(r, ex.new_query.is_none()));
            }
            Ok((Some(v), ex.new_query, AuthOutcome::Allowed))
        }
    }
}

/// What the forward step is handed: the request as it goes upstream
/// (headers rewritten, tokens stripped, body under its cap), its target,
/// the route's upstream (an index into `Runtime::upstreams`, of the
/// runtime it was routed under, which comes along) and the client's
/// pending WebSocket upgrade.
pub struct Forward {
    pub rt: Arc<Runtime>,
    pub req: Request<ReqBody>,
    pub target: PathAndQuery,
    pub upstream: usize,
    pub client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The token's life, on a route that ends streams with their token.
    pub life: Option<proxy::stream_end::TokenLife>,
}

/// The forward step of a running gateway: send to the route's upstream,
/// then splice an agreed upgrade.
#[allow(clippy::manual_async_fn)] // not an async fn: rust-lang/rust#62958
fn forward_upstream(mut f: Forward) -> impl Future<Output = Result<Resp, ProxyError>> + Send {
    async move {
        let mut resp = f.rt.upstreams[f.upstream].send(f.req, f.target).await?;
        // Upgrade splice: a 101 becomes a tunnel only for the WebSocket upgrade
        // the client asked for (taking the token's life along, if any).
        proxy::splice_upgrade(f.client_upgrade, &mut resp, &mut f.life)?;
        let resp = proxy::into_client_response(resp);
        // A streaming response on such a route ends when its token does.
        Ok(match f.life {
            Some(l) => l.guard_response(resp).map(Body::Ending),
            None => resp.map(Body::Upstream),
        })
    }
}

/// The forwarded request's headers (`proxy::prepare_request_headers`).
/// `query_kept`: the token, if any, did not come from the query.
fn forward_headers(
    conn: &ConnInfo,
    route: &Route,
    parts: &mut http::request::Parts,
    verified: Option<&auth::Verified>,
    query_kept: bool,
    upgrade: bool,
    cfg: &crate::config::Config,
) {
    // The host routed on, for X-Forwarded-Host when there is no Host header
    // (HTTP/2 `:authority`); a Host that differs from it was refused.
    let authority = if parts.headers.contains_key(HOST) {
        None
    } else {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    };
    // Behind a trusted proxy, who and how the client is comes from its
    // X-Forwarded-For and X-Forwarded-Proto; every other connection (one
    // branch) is its own client, with the listener's scheme.
    let fwd = conn
        .trusted
        .as_ref()
        .map(|t| trusted::forwarded(t, conn.client, &conn.client_ip, &parts.headers));
    let https = match &fwd {
        Some(trusted::Forwarded { https: Some(h), .. }) => *h,
        _ => conn.tls,
    };
    let proto = if https {
        proxy::X_FORWARDED_PROTO_HTTPS
    } else {
        proxy::X_FORWARDED_PROTO_HTTP
    };
    let identity = verified.map(|v| v.identity());
    let ctx = ForwardCtx {
        client_ip: fwd.as_ref().map_or(&conn.client_ip, |f| &f.real_ip),
        forwarded_for: fwd.as_ref().map(|f| &f.chain),
        proto: &proto,
        names: &cfg.identity,
        identity: identity.as_ref(),
        strip_authorization: if verified.is_some() {
            query_kept
        } else {
            !route.forward_tokens && !matches!(extract::bearer(&parts.headers), Ok(None))
        },
        upgrade,
        authority: authority.as_ref(),
    };
    proxy::prepare_request_headers(&mut parts.headers, &ctx);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::credentials::signing::TokenClaims;
    use crate::net::trusted::TrustedProxies;

    /// What the forward step saw of each request that reached it.
    type Seen = Arc<Mutex<Vec<(http::HeaderMap, String)>>>;

    /// The stack in-process: a real gateway state (SQLite store, own
    /// signing key), a request built in memory, and a forward step that
    /// records what reaches it instead of calling an upstream.
    async fn through_stack(gw: &Arc<Gateway>, req: http::Request<()>, seen: &Seen) -> Resp {
        let rt = gw.runtime.load_full();
        let conn = Arc::new(ConnInfo::new(
            false,
            "127.0.0.1".parse().unwrap(),
            &Arc::new(TrustedProxies::default()),
        ));
        let (parts, ()) = req.into_parts();
        let body = ClientBody::none(&rt.config.server);
        let seen = seen.clone();
        let forward = tower::service_fn(move |f: Forward| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((f.req.headers().clone(), f.target.to_string()));
                Ok::<_, ProxyError>(crate::http::empty(StatusCode::OK))
            }
        });
        route_request(gw.clone(), rt, conn, parts, body, forward).await.resp
    }

    #[tokio::test]
    async fn a_refused_token_never_reaches_the_forward_step_and_an_allowed_one_arrives_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let cfg = crate::config::from_str(&format!(
            "[store]\nurl = \"sqlite://{d}/t.db\"\nkek_file = \"{d}/kek\"\n\
             [scopes]\n\"tiles:read\" = \"r\"\n\
             [[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:9\"]\n\
             [[routes]]\npath = \"/tiles/{{z}}\"\nupstream = \"tiles\"\nscopes = [\"tiles:read\"]\ntoken_query = [\"access_token\"]\n"
        ))
        .unwrap();
        let store = crate::state::open_store(&cfg).await.unwrap();
        let gw = Gateway::new(cfg, store, None).await.unwrap();
        let now = crate::clock::now_unix();
        let token = {
            let rt = gw.runtime.load();
            TokenClaims::new(
                &rt.config,
                "api_token",
                "alice",
                "jti-1",
                "tiles:read",
                now,
                Some(now + 300),
            )
            .sign(&gw.verifier.keys())
            .unwrap()
        };
        let seen: Seen = Arc::default();

        // Refused: no token, a forged one, one in the query that is forged.
        for req in [
            http::Request::get("/tiles/1").body(()).unwrap(),
            http::Request::get("/tiles/1")
                .header("authorization", "Bearer not-a-token")
                .body(())
                .unwrap(),
            http::Request::get("/tiles/1?access_token=not-a-token")
                .body(())
                .unwrap(),
        ] {
            let r = through_stack(&gw, req, &seen).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        assert!(
            seen.lock().unwrap().is_empty(),
            "a refused request reached the forward step"
        );

        // Allowed, in the header: forwarded without it.
        let req = http::Request::get("/tiles/1?x=1")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        assert_eq!(through_stack(&gw, req, &seen).await.status(), StatusCode::OK);
        // Allowed, in the query: forwarded without the parameter.
        let req = http::Request::get(format!("/tiles/2?access_token={token}&x=2"))
            .body(())
            .unwrap();
        assert_eq!(through_stack(&gw, req, &seen).await.status(), StatusCode::OK);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].0.get("authorization").is_none(), "{:?}", seen[0].0);
        assert_eq!(seen[0].1, "/tiles/1?x=1");
        assert_eq!(seen[1].1, "/tiles/2?x=2");
        for (headers, target) in seen.iter() {
            assert!(!target.contains(&token) && !format!("{headers:?}").contains(&token));
        }
    }
}
