//! The request path, composed in one place, outermost first:
//!
//! 1. `Telemetry` (access log + metrics): outermost, so it sees every
//!    response, the gateway's own refusals included.
//! 2. `GatewayService`: path normalisation (before anything reads the
//!    path, so no later step can be fooled by `..` or `%2f`) → inline token
//!    endpoints → CORS preflight (no token needed) → route match →
//!    authorize (token extraction, verification through the cache, the
//!    route's rule) → forward.
//!
//! Every step returns a ready `Response` on refusal, so the layers around
//! see ordinary responses; the service never fails.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt as _;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, CONNECTION, CONTENT_LENGTH, HOST, ORIGIN, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tower::{Layer, Service};

use super::{ConnInfo, Gateway, Runtime};
use crate::auth::{self, extract, AuthError};
use crate::body::ClientBody;
use crate::http::{Body, IntoResponse, Resp};
use crate::metrics::{AuthOutcome, InFlight, RouteStats};
use crate::net::trusted;
use crate::proxy::{self, ForwardCtx, ProxyError, ReqBody};
use crate::routing::{normalize, Policy, Route, RouteMiss, TileRefusal};

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
        // would copy the (several KiB) future once more per request.
        let served: BoxFuture<Served> = Box::pin(handle(gw, conn, req));
        served.map(Ok)
    }
}

/// One host per request: a single `Host` header, equal to the request
/// target's authority when both are present (an HTTP/2 `host` that differs
/// from `:authority`, or an absolute-form HTTP/1 target with another
/// `Host`, would be routed on one and read by the backend as the other).
fn one_host(req: &http::request::Parts) -> Result<(), ProxyError> {
    let mut hosts = req.headers.get_all(HOST).iter();
    let Some(h) = hosts.next() else { return Ok(()) };
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    match req.uri.authority() {
        Some(a) if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) => Err(ProxyError::BadRequest(
            "the Host header differs from the request target",
        )),
        _ => Ok(()),
    }
}

/// The request's host, without port, from `Host` or the URI (HTTP/2).
fn host_of(req: &http::request::Parts) -> Option<&str> {
    let h = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())?;
    // `maps.example.` names the same host as `maps.example` (a trailing
    // dot would otherwise miss the host's routes and fall to host-less ones).
    let h = match h.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') || h.starts_with('[') =>
        {
            if h.starts_with('[') {
                h.split(']').next().map(|x| &x[1..]).unwrap_or(h)
            } else {
                host
            }
        }
        _ => h,
    };
    Some(h.strip_suffix('.').unwrap_or(h))
}

async fn handle(gw: Arc<Gateway>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Served {
    let rt = gw.runtime.load_full();
    let (parts, body) = req.into_parts();
    // The body under `server.body_read_timeout`; whatever is left of it when
    // the response is ready (an early refusal) lingers (`crate::body`).
    let version = parts.version;
    let mut body = ClientBody::new(body, &parts, &rt.config.server);
    let mut served = route_request(&gw, &rt, &conn, parts, &mut body).await;
    crate::body::close_if_unfinished(version, &body, &mut served.resp);
    served
}

async fn route_request(
    gw: &Gateway,
    rt: &Runtime,
    conn: &ConnInfo,
    parts: http::request::Parts,
    body: &mut ClientBody,
) -> Served {
    // A Uri clone shares its bytes: the normalised path may borrow from it
    // while `parts` moves on.
    let uri = parts.uri.clone();
    let path = match normalize(uri.path()) {
        Ok(p) => p,
        Err(e) => return Served::new(e.into_response()),
    };
    if let Some(ep) = gw.issuer.endpoint(&rt.config.endpoints, &path) {
        drop(path);
        // The client the failure throttle counts: behind a trusted proxy,
        // the one its X-Forwarded-For names.
        let client = match &conn.trusted {
            None => conn.client,
            Some(t) => trusted::client_of(t, conn.client, &parts.headers),
        };
        // Boxed: the token endpoints' future is large, and without the box
        // every proxied request would carry (and copy) its size.
        let ctx = crate::issue::Ctx {
            verifier: &gw.verifier,
            store: &gw.store,
            issuer: &gw.issuer,
            secrets: &gw.secrets,
            cfg: &rt.config,
            client,
        };
        let resp = Box::pin(crate::issue::serve(&ctx, ep, parts, body)).await;
        return Served::new(resp).on(RouteStats::inline());
    }
    if let Err(e) = one_host(&parts) {
        return Served::new(e.into_response());
    }
    let host = host_of(&parts);

    // CORS preflight: answered here, without a token, for the route the
    // browser's real request would take.
    if parts.method == Method::OPTIONS && parts.headers.contains_key(ORIGIN) {
        if let Some(m) = parts
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        {
            return preflight(rt.routes.resolve(host, &m, &path), &parts, &m);
        }
    }

    let route = match rt.routes.resolve(host, &parts.method, &path) {
        Ok(r) => r,
        Err(miss) => {
            let mut r = miss.into_response();
            if let RouteMiss::MethodNotAllowed(_) = miss {
                let allow = rt.routes.allowed(host, &path).header_value();
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    r.headers_mut().insert(http::header::ALLOW, v);
                }
            }
            return Served::new(r);
        }
    };
    let origin = parts.headers.get(ORIGIN).cloned();
    let mut served = authorize_and_forward(gw, rt, route, conn, parts, body, &path)
        .await
        .on(&route.stats);
    if let (Some(cors), Some(o)) = (&route.cors, &origin) {
        cors.decorate(served.resp.headers_mut(), o);
    }
    served
}

fn preflight(found: Result<&Route, RouteMiss>, parts: &http::request::Parts, m: &Method) -> Served {
    let Ok(route) = found else {
        return Served::new(crate::http::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route for this preflight",
        ));
    };
    Served::new(preflight_for(route, parts, m)).on(&route.stats)
}

fn preflight_for(route: &Route, parts: &http::request::Parts, m: &Method) -> Resp {
    let Some(cors) = &route.cors else {
        return crate::http::error(
            StatusCode::FORBIDDEN,
            "cors_not_allowed",
            "this route does not allow cross-origin requests",
        );
    };
    let origin = parts.headers.get(ORIGIN).expect("checked");
    if !cors.allows(origin.as_bytes()) {
        return crate::http::error(StatusCode::FORBIDDEN, "cors_not_allowed", "this origin is not allowed");
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
        AuthError::Invalid(_) => AuthOutcome::Invalid,
        AuthError::InsufficientScope | AuthError::ReadOnly | AuthError::OriginNotAllowed => AuthOutcome::Forbidden,
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
    crate::routing::make_private(resp.headers_mut(), vary);
    Served {
        resp,
        route: None,
        auth: Some(AuthOutcome::Forbidden),
    }
}

/// `Upgrade: websocket` (the only protocol the gateway tunnels).
fn is_websocket(v: Option<&HeaderValue>) -> bool {
    v.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Whether the request asks for a WebSocket upgrade. Any other `Upgrade`
/// (`h2c`, TLS) is not passed on: the request is forwarded as a plain one
/// (curl's opportunistic `--http2` upgrade still gets its answer).
fn wants_upgrade(h: &http::HeaderMap) -> bool {
    is_websocket(h.get(UPGRADE))
        && h.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

async fn authorize_and_forward(
    gw: &Gateway,
    rt: &Runtime,
    route: &Route,
    conn: &ConnInfo,
    mut parts: http::request::Parts,
    body: &mut ClientBody,
    path: &str,
) -> Served {
    let cfg = &rt.config;
    let (verified, new_query, outcome) = match &route.policy {
        // A token a client sends to a public route is not consumed, and is
        // not forwarded either (it would reach upstream logs), unless the
        // route says so.
        Policy::Public if route.forward_tokens => (None, None, AuthOutcome::Public),
        Policy::Public => (
            None,
            extract::strip_query_tokens(parts.uri.query(), &route.token_query),
            AuthOutcome::Public,
        ),
        Policy::Token { .. } => {
            let ex = match extract::extract(&parts.headers, parts.uri.query(), &route.token_query) {
                Ok(Some(ex)) => ex,
                Ok(None) => return refuse(AuthError::Missing),
                Err(e) => return refuse(e),
            };
            // A cache hit needs no future at all; a miss (a signature check,
            // perhaps a key fetch) is boxed so the hit path stays small.
            let v = match gw.verifier.cached(&ex.token) {
                Ok(Some(v)) => v,
                Ok(None) => match Box::pin(gw.verifier.verify(&ex.token)).await {
                    Ok(v) => v,
                    Err(e) => return refuse(e),
                },
                Err(e) => return refuse(e),
            };
            if let Err(e) = auth::check_rule(&route.policy, &parts.method, &v) {
                return refuse(e);
            }
            if let Some(l) = &route.limiter {
                if let Err(wait) = l.check(v.limit_key()) {
                    return Served::new(ProxyError::RateLimited(wait).into_response());
                }
            }
            // Origin binding phase (docs/grants.md).
            if let Err(e) = auth::check_origin(route.bind_origin, route.allow_missing_origin, &v, &parts.headers) {
                return refuse(e);
            }
            // Tile grant phase (docs/grants.md).
            if let Err(r) = auth::check_tiles(route.tiles.as_deref(), &v, path) {
                return refuse_tile(r, ex.new_query.is_none());
            }
            (Some(v), ex.new_query, AuthOutcome::Allowed)
        }
    };

    let max_body = cfg.server.max_body_bytes;
    if let Some(len) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_body {
            return Served::new(ProxyError::BodyTooLarge.into_response());
        }
    }

    // Target: the normalised path, re-prefixed as configured, with the
    // query minus any token parameter.
    let mut target_path: Cow<'_, str> = Cow::Borrowed(path);
    if let Some(strip) = &route.strip_prefix {
        if let Some(rest) = target_path.strip_prefix(strip.as_ref()) {
            target_path = Cow::Owned(if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            });
        }
    }
    if let Some(add) = &route.add_prefix {
        target_path = Cow::Owned(format!("{}{}", add.trim_end_matches('/'), target_path));
    }
    let unchanged = matches!(target_path, Cow::Borrowed(p) if p == parts.uri.path()) && new_query.is_none();
    let pq = if unchanged {
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    } else {
        let q = match &new_query {
            Some(q) => Some(q.as_str()).filter(|q| !q.is_empty()),
            None => parts.uri.query(),
        };
        let s = match q {
            Some(q) => format!("{target_path}?{q}"),
            None => target_path.into_owned(),
        };
        match PathAndQuery::try_from(s) {
            Ok(pq) => pq,
            Err(_) => {
                return Served::new(ProxyError::BadRequest("the request target cannot be forwarded").into_response())
            }
        }
    };

    // Shared-cache phase: a token route's responses are private to the
    // caller (`Some(vary on Authorization)`) unless it says otherwise.
    let private = (verified.is_some() && !route.shared_cache).then_some(new_query.is_none());
    let upgrade = wants_upgrade(&parts.headers);
    // The host routed on, for X-Forwarded-Host when there is no Host header
    // (HTTP/2 `:authority`); `handle` refused a Host that differs from it.
    let authority = if parts.headers.contains_key(HOST) {
        None
    } else {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    };
    let client_upgrade = if upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    // Behind a trusted proxy, who and how the client is comes from its
    // X-Forwarded-For and X-Forwarded-Proto; every other connection (one
    // branch) is its own client, with the listener's scheme.
    // Scoped: nothing of it is kept across the upstream call.
    {
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
        let identity = verified.as_ref().map(|v| v.identity());
        let ctx = ForwardCtx {
            client_ip: fwd.as_ref().map_or(&conn.client_ip, |f| &f.real_ip),
            forwarded_for: fwd.as_ref().map(|f| &f.chain),
            proto: &proto,
            names: &cfg.identity,
            identity: identity.as_ref(),
            strip_authorization: if verified.is_some() {
                new_query.is_none()
            } else {
                !route.forward_tokens && !matches!(extract::bearer(&parts.headers), Ok(None))
            },
            upgrade,
            authority: authority.as_ref(),
        };
        proxy::prepare_request_headers(&mut parts.headers, &ctx);
    }
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
    let req = Request::from_parts(parts, body);

    let mut resp = match upstream.send(req, pq).await {
        Ok(r) => r,
        Err(e) => {
            return Served {
                resp: e.into_response(),
                route: None,
                auth: Some(outcome),
            }
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Only a WebSocket upgrade the client asked for becomes a tunnel; a
        // 101 for anything else (h2c, or no request at all) would hand the
        // client a raw connection to the backend, past every route rule.
        let agreed = client_upgrade.is_some() && is_websocket(resp.headers().get(UPGRADE));
        if !agreed {
            tracing::warn!("upstream switched protocols without an agreed WebSocket upgrade");
            return Served {
                resp: ProxyError::UpstreamFailed.into_response(),
                route: None,
                auth: Some(outcome),
            };
        }
        if let Some(client) = client_upgrade {
            let up = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(c), Ok(u)) = (client.await, up.await) {
                    let mut c = hyper_util::rt::TokioIo::new(c);
                    let mut u = hyper_util::rt::TokioIo::new(u);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
            });
        }
    }
    let mut resp = proxy::into_client_response(resp).map(Body::Upstream);
    if let Some(vary) = private {
        crate::routing::make_private(resp.headers_mut(), vary);
    }
    Served {
        resp,
        route: None,
        auth: Some(outcome),
    }
}
