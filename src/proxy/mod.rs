//! Forwarding: upstream pools (our own HTTP/1.1 pool per backend over
//! hyper's `client::conn`, see `pool`; hyper-util's pooled client for HTTP/2
//! upstreams; http and https through rustls), backend choice (round robin, skipping backends that
//! failed to connect a moment ago), header rewrite (hop-by-hop, identity,
//! `X-Forwarded-*`), timeouts, and `Upgrade` pass-through.

mod headers;
mod pool;
pub mod stream_end;
mod upgrade;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use headers::{prepare_request_headers, strip_response_hop_headers, ForwardCtx};
pub use pool::{PooledBody, UpstreamBodyError};
pub use upgrade::{declared_length_fits, splice_upgrade, wants_upgrade};

use crate::body::{ClientBody, ClientBodyError};
use crate::config::UpstreamConfig;
use crate::metrics::UpstreamStats;
use crate::net::{self, client::HttpsClient};

/// The forwarder's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream failed to answer")]
    UpstreamFailed,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("the request body is too large")]
    BodyTooLarge,
    #[error("the request body was not received in time")]
    RequestBodyTimeout,
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// Over the route's per-subject rate; seconds to wait.
    #[error("too many requests for this subject on this route")]
    RateLimited(u64),
}

/// The body sent upstream: the client's, capped at the configured size and
/// under `server.body_read_timeout`, or nothing (a retry of a body-less
/// request). A client body dropped before its end (the upstream answered
/// or failed early, or the cap was hit) lingers: see [`crate::body`].
pub enum ReqBody {
    Client {
        inner: ClientBody,
        left: u64,
        progress: Option<Arc<Progress>>,
    },
    Empty,
}

impl ReqBody {
    /// The client's body, at most `limit` bytes of it.
    pub fn client(inner: ClientBody, limit: u64) -> ReqBody {
        ReqBody::Client {
            inner,
            left: limit,
            progress: None,
        }
    }

    /// How the upload goes (for uploads only).
    fn progress(&mut self) -> Option<Arc<Progress>> {
        match self {
            ReqBody::Client { progress, .. } => Some(progress.get_or_insert_with(|| Arc::new(Progress::new())).clone()),
            ReqBody::Empty => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReqBodyError {
    #[error("request body exceeds the limit")]
    TooLarge,
    #[error("the client stopped sending its request body")]
    TimedOut,
    #[error("the request body could not be read: {0}")]
    Client(hyper::Error),
}

/// An upload as the upstream request sees it. `request_timeout` counts
/// from the last frame handed upstream and not while the gateway waits on
/// the client (that wait is `server.body_read_timeout`'s), so a slow but
/// moving upload is not cut off and a stalled client gets 408, not 504.
/// Also keeps why the body failed, which an HTTP/2 upstream connection does
/// not pass back.
pub struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last frame (or the end).
    last_ms: AtomicU64,
    waiting: AtomicBool,
    /// 0 none, 1 too large, 2 timed out, 3 unreadable.
    failure: AtomicU8,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            failure: AtomicU8::new(0),
        }
    }
    fn moved(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
    }
    fn quiet_since(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
    fn failed(&self, e: &ReqBodyError) {
        let code = match e {
            ReqBodyError::TooLarge => 1,
            ReqBodyError::TimedOut => 2,
            ReqBodyError::Client(_) => 3,
        };
        self.failure.store(code, Ordering::Relaxed);
    }
    /// The client's error to answer with, when the body is why the request
    /// failed.
    fn failure(&self) -> Option<ProxyError> {
        match self.failure.load(Ordering::Relaxed) {
            1 => Some(ProxyError::BodyTooLarge),
            2 => Some(ProxyError::RequestBodyTimeout),
            3 => Some(ProxyError::BodyUnreadable),
            _ => None,
        }
    }
}

impl HttpBody for ReqBody {
    type Data = Bytes;
    type Error = ReqBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ReqBodyError>>> {
        let (inner, left, progress) = match self.get_mut() {
            ReqBody::Empty => return Poll::Ready(None),
            ReqBody::Client { inner, left, progress } => (inner, left, progress),
        };
        let r = match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                if n > *left {
                    // Not read further: dropping the body drains it, so
                    // the 413 reaches a client that is still sending.
                    Poll::Ready(Some(Err(ReqBodyError::TooLarge)))
                } else {
                    *left -= n;
                    Poll::Ready(Some(Ok(f)))
                }
            }
            Poll::Ready(Some(Err(ClientBodyError::TimedOut))) => Poll::Ready(Some(Err(ReqBodyError::TimedOut))),
            Poll::Ready(Some(Err(ClientBodyError::Read(e)))) => Poll::Ready(Some(Err(ReqBodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if let Some(p) = progress {
                    p.waiting.store(inner.waiting(), Ordering::Relaxed);
                }
                return Poll::Pending;
            }
        };
        if let Some(p) = progress {
            match &r {
                Poll::Ready(Some(Err(e))) => p.failed(e),
                _ => p.moved(),
            }
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Client { inner, .. } => inner.is_end_stream(),
        }
    }
    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Client { inner, .. } => inner.size_hint(),
        }
    }
}

/// Run `fut` (an upload and the wait for the response head) under
/// `limit` counted as [`Progress`] says; `Err` when it ran out.
async fn upload_timeout<F: Future>(limit: Duration, p: &Progress, fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let mut deadline = p.quiet_since() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), fut.as_mut()).await {
            Ok(r) => return Ok(r),
            Err(_) => {
                let now = Instant::now();
                let next = p.quiet_since() + limit;
                if next > now {
                    deadline = next;
                } else if p.waiting.load(Ordering::Relaxed) {
                    // Waiting on the client: its own timer decides; look again later.
                    deadline = now + limit;
                } else {
                    return Err(());
                }
            }
        }
    }
}

struct Backend {
    scheme: Scheme,
    authority: Authority,
    /// `scheme://authority/`, what the connector dials.
    base: Uri,
    /// The `Host` header sent to it (made once).
    host: HeaderValue,
    /// Idle HTTP/1.1 connections to it.
    pool: pool::Pool,
    /// Unix millis until which this backend is skipped (connect failed).
    down_until: AtomicI64,
}

/// How requests reach the backends.
enum Transport {
    /// HTTP/1.1: `pool` per backend, connections made by this connector.
    Http1(HttpsConnector<HttpConnector>),
    /// HTTP/2 (multiplexed, one connection per backend): hyper-util's
    /// client, one per per-core worker (index 0: every other thread), so a
    /// worker's requests go over connections its own runtime drives.
    Http2(Box<[HttpsClient<ReqBody>]>),
}

/// One upstream: its backends and their connections.
pub struct Upstream {
    pub cfg: Arc<UpstreamConfig>,
    /// Its latency histogram (resolved once, not per request).
    stats: UpstreamStats,
    transport: Transport,
    backends: Vec<Backend>,
    next: AtomicUsize,
}

/// A backend that failed to connect is skipped for this long.
const BACKEND_PENALTY_MS: i64 = 2_000;

fn connector(cfg: &UpstreamConfig) -> Result<HttpsConnector<HttpConnector>, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let tls = net::tls::client_tls(cfg.ca_file.as_deref())?;
    Ok(net::client::https_connector(http, tls, cfg.http2))
}

impl Upstream {
    /// An upstream whose connections are kept apart for each of `workers`
    /// per-core workers (`server.workers`; 0 when shared).
    pub fn new(cfg: Arc<UpstreamConfig>, workers: usize) -> Result<Upstream, String> {
        let transport = if cfg.http2 {
            let connector = connector(&cfg)?;
            Transport::Http2(
                (0..=workers)
                    .map(|_| {
                        Client::builder(TokioExecutor::new())
                            .pool_idle_timeout(cfg.idle_timeout)
                            .pool_max_idle_per_host(cfg.pool_max_idle)
                            .pool_timer(TokioTimer::new())
                            .timer(TokioTimer::new())
                            .http2_only(true)
                            .build(connector.clone())
                    })
                    .collect(),
            )
        } else {
            Transport::Http1(connector(&cfg)?)
        };
        let mut backends = Vec::with_capacity(cfg.backends.len());
        for u in &cfg.backends {
            let scheme = u.scheme().cloned().unwrap_or(Scheme::HTTP);
            let authority = u.authority().cloned().expect("validated");
            let base = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .map_err(|e| format!("upstream {}: {e}", cfg.name))?;
            // Host as clients would send it: the port only when not the
            // scheme's default.
            let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
            let host = match authority.port_u16() {
                Some(p) if p != default_port => authority.as_str().to_owned(),
                _ => authority.host().to_owned(),
            };
            backends.push(Backend {
                host: HeaderValue::try_from(host).map_err(|e| format!("upstream {}: {e}", cfg.name))?,
                pool: pool::Pool::new(&cfg, authority.as_str(), workers),
                scheme,
                authority,
                base,
                down_until: AtomicI64::new(0),
            });
        }
        Ok(Upstream {
            stats: UpstreamStats::new(&cfg.name),
            transport,
            cfg,
            backends,
            next: AtomicUsize::new(0),
        })
    }

    /// Pick a backend: round robin over those not penalised; when all are,
    /// plain round robin (a penalty is a hint, not a verdict).
    fn pick(&self) -> usize {
        let n = self.backends.len();
        // One backend (the usual case): no clock read, and no shared
        // counter bounced between worker threads.
        if n == 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = crate::clock::now_millis();
        for i in 0..n {
            let b = (start + i) % n;
            if self.backends[b].down_until.load(Ordering::Relaxed) <= now {
                return b;
            }
        }
        start % n
    }

    /// Send to backend `b`: HTTP/1.1 through its pool (origin-form target,
    /// its `Host`), HTTP/2 through the client (absolute URI).
    ///
    /// A plain `fn` returning the future, not an `async fn`: an `async fn`
    /// keeps its by-value arguments twice in its state (rust-lang/rust#62958),
    /// and the request is 344 bytes copied on every await above it.
    #[allow(clippy::manual_async_fn)] // not an async fn: rust-lang/rust#62958
    fn send_to<'a>(
        &'a self,
        b: usize,
        mut req: Request<ReqBody>,
        pq: &'a PathAndQuery,
    ) -> impl Future<Output = Result<Response<PooledBody>, pool::SendError>> + Send + 'a {
        async move {
            let be = &self.backends[b];
            match &self.transport {
                Transport::Http1(connector) => {
                    *req.uri_mut() = Uri::from(pq.clone());
                    req.headers_mut().insert(http::header::HOST, be.host.clone());
                    be.pool
                        .send(req, || {
                            let mut c = connector.clone();
                            let base = be.base.clone();
                            async move { tower::Service::call(&mut c, base).await }
                        })
                        .await
                }
                // Boxed: hyper-util's request future is large and HTTP/2
                // upstreams are the rarer case.
                Transport::Http2(clients) => {
                    // The runtime's own client. Never out of range: `workers`
                    // is fixed for the process's life (a reload keeps it).
                    let client = clients.get(net::workers::index()).unwrap_or(&clients[0]);
                    *req.uri_mut() = Uri::builder()
                        .scheme(be.scheme.clone())
                        .authority(be.authority.clone())
                        .path_and_query(pq.clone())
                        .build()
                        .map_err(|e| pool::SendError::Connect(e.into()))?;
                    match Box::pin(client.request(req)).await {
                        Ok(r) => Ok(r.map(|b| be.pool.unpooled(b))),
                        Err(e) if e.is_connect() => Err(pool::SendError::Connect(e.into())),
                        Err(e) => Err(pool::SendError::Other(e.into())),
                    }
                }
            }
        }
    }

    /// Send the prepared request to a backend; retry once per other backend
    /// on connect failure when the request has no body to replay.
    /// (A plain `fn` returning the future, as for `send_to`.)
    #[allow(clippy::manual_async_fn)] // not an async fn: rust-lang/rust#62958
    pub fn send(
        &self,
        mut req: Request<ReqBody>,
        pq: PathAndQuery,
    ) -> impl Future<Output = Result<Response<PooledBody>, ProxyError>> + Send + '_ {
        async move {
            let replayable = matches!(req.body(), ReqBody::Empty) || req.body().is_end_stream();
            let attempts = if replayable { self.backends.len() } else { 1 };
            let upload = if replayable { None } else { req.body_mut().progress() };
            let started = Instant::now();
            for attempt in 0..attempts {
                let b = self.pick();
                // Boxed: only set with several backends, and the future
                // that holds it across the await is copied at every level.
                let next = if replayable && attempt + 1 < attempts {
                    Some(Box::new(clone_head(&req)))
                } else {
                    None
                };
                let sent = match &upload {
                    None => {
                        // One deadline for every attempt, from the clock
                        // read once above (each read is a vDSO call).
                        // (A timeout too long to add is as good as none.)
                        let deadline = started
                            .checked_add(self.cfg.request_timeout)
                            .unwrap_or_else(|| started + Duration::from_secs(30 * 365 * 86_400));
                        let deadline = tokio::time::Instant::from_std(deadline);
                        tokio::time::timeout_at(deadline, self.send_to(b, req, &pq))
                            .await
                            .map_err(|_| ())
                    }
                    // An upload: boxed, so its larger future is not part of
                    // every bodiless request's.
                    Some(p) => Box::pin(upload_timeout(self.cfg.request_timeout, p, self.send_to(b, req, &pq))).await,
                };
                match sent {
                    Err(()) => return Err(ProxyError::UpstreamTimeout),
                    Ok(Ok(resp)) => {
                        self.stats.latency(started.elapsed());
                        return Ok(resp);
                    }
                    Ok(Err(pool::SendError::Connect(e))) => {
                        self.backends[b]
                            .down_until
                            .store(crate::clock::now_millis() + BACKEND_PENALTY_MS, Ordering::Relaxed);
                        tracing::warn!(upstream = %self.cfg.name, backend = %self.backends[b].authority, error = %pool::chain(&*e), "upstream connect failed");
                        match next {
                            Some(n) => {
                                req = *n;
                                continue;
                            }
                            None => return Err(ProxyError::UpstreamUnreachable),
                        }
                    }
                    Ok(Err(e)) => {
                        // The client's body, not the upstream, is why it failed:
                        // the client's error (413, 408, 400), not a 502.
                        if let Some(client) = upload.as_ref().and_then(|p| p.failure()) {
                            tracing::debug!(upstream = %self.cfg.name, error = %e, "upstream request aborted: the client's body failed");
                            return Err(client);
                        }
                        tracing::warn!(upstream = %self.cfg.name, error = %e, "upstream request failed");
                        return Err(ProxyError::UpstreamFailed);
                    }
                }
            }
            Err(ProxyError::UpstreamUnreachable)
        }
    }
}

fn clone_head(req: &Request<ReqBody>) -> Request<ReqBody> {
    let mut r = Request::new(ReqBody::Empty);
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    r
}

/// Turn the upstream's response into the client's: hop-by-hop headers out,
/// body streamed as it comes (the caller wraps it in the gateway's
/// response body, `http::Body::Upstream`).
pub fn into_client_response(mut resp: Response<PooledBody>) -> Response<PooledBody> {
    let status = resp.status();
    strip_response_hop_headers(resp.headers_mut(), status);
    resp
}

pub const X_FORWARDED_PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
pub const X_FORWARDED_PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");
