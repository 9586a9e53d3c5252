//! HTTP/1.1 upstream connections: one pool of idle keep-alive connections
//! per backend, over hyper's `client::conn::http1`.
//!
//! Why not hyper-util's legacy client here: for every request it spawns a
//! task that waits for the connection to become idle again and then puts it
//! back into a pool keyed (and hashed) by scheme and authority, and it
//! formats the `Host` header anew. Here a connection goes back to its
//! backend's pool when the response body has been read to its end (in the
//! body itself, no task), `Host` is made once per backend, and checkout is a
//! pop from a short stack under an uncontended lock.
//!
//! Rules: newest idle connection first (the warmest, and the oldest ones age
//! out); a connection that closed, or sat idle longer than the upstream's
//! `idle_timeout`, is dropped at checkout and by a sweep every few seconds;
//! at most `pool_max_idle` idle connections per backend; a response whose
//! body is dropped before its end (the client went away) takes its
//! connection with it. A request that a reused connection refused before
//! sending anything (it was closing) is retried on the next connection.
//!
//! With per-core workers (`server.workers`), each backend's idle
//! connections are kept apart per worker, in a slot of its own (its own
//! lock, reference count and cache lines): a connection's task runs on the
//! runtime of the worker that opened it, and only that worker takes it from
//! the pool again, so a request never wakes another worker's thread, and
//! two workers' requests touch no common pool memory. Slot 0 is for every
//! other thread (the shared runtime).
//!
//! A response body that goes the upstream's `body_read_timeout` without a
//! byte fails (the client's response is cut off, as when the upstream dies
//! mid-response) and takes its connection with it. Its timer is armed only
//! while the body is waited on (see [`crate::body::IdleTimer`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::ReqBody;
use crate::body::IdleTimer;
use crate::config::UpstreamConfig;

type Sender = http1::SendRequest<ReqBody>;

struct Idle {
    tx: Sender,
    since: Instant,
}

/// One worker's part of a backend's pool; aligned so that two workers'
/// slots never share a cache line.
#[repr(align(128))]
struct Slot {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// The upstream's `body_read_timeout`, its name and this backend's
    /// address (for the log line and metric of a stalled body).
    body_timeout: Duration,
    upstream: Arc<str>,
    backend: Arc<str>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle connection that is still open and fresh.
    fn take(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(i) = idle.pop() {
            if !i.tx.is_closed() && now.duration_since(i.since) < self.idle_timeout {
                return Some(i.tx);
            }
        }
        None
    }

    fn put(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Drop closed and expired connections (oldest are at the bottom).
    fn sweep(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < self.idle_timeout);
    }
}

/// One backend's idle connections: a slot per per-core worker (at its
/// [`crate::net::workers::index`]) and slot 0 for every other thread.
pub(super) struct Pool(Box<[Arc<Slot>]>);

/// How a send failed: `Connect` means no connection could be made (the
/// backend is down: try another); `Failed` means the request went out and
/// no answer came back.
pub(super) enum SendError {
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Failed(hyper::Error),
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// An error and its causes, `a: b: c`.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

impl std::fmt::Display for SendError {
    // Connect errors carry the cause (refused, timed out, TLS) in their
    // source chain: the log line shows all of it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {}", chain(&**e)),
            SendError::Failed(e) => e.fmt(f),
            SendError::Other(e) => e.fmt(f),
        }
    }
}

impl Pool {
    /// A backend's pool with a slot for each of `workers` per-core workers
    /// (0 when shared) and one for every other thread.
    pub(super) fn new(cfg: &UpstreamConfig, backend: &str, workers: usize) -> Pool {
        let idle_timeout = cfg.idle_timeout;
        let (upstream, backend): (Arc<str>, Arc<str>) = (cfg.name.as_str().into(), backend.into());
        let slots: Box<[Arc<Slot>]> = (0..=workers)
            .map(|_| {
                Arc::new(Slot {
                    idle: Mutex::new(Vec::new()),
                    max_idle: cfg.pool_max_idle,
                    idle_timeout,
                    body_timeout: cfg.body_read_timeout,
                    upstream: upstream.clone(),
                    backend: backend.clone(),
                })
            })
            .collect();
        // The sweep holds weak references: it ends with the pool (a reload
        // replaces the upstreams) and the last body that kept a slot.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak: Vec<Weak<Slot>> = slots.iter().map(Arc::downgrade).collect();
            let every = (idle_timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let mut alive = false;
                    for slot in weak.iter().filter_map(Weak::upgrade) {
                        slot.sweep();
                        alive = true;
                    }
                    if !alive {
                        return;
                    }
                }
            });
        }
        Pool(slots)
    }

    /// The current thread's slot, and whether it may pool: a thread the
    /// pool has no slot for (not a worker it was made for) gets slot 0's
    /// settings and uses its connections once.
    fn slot(&self) -> (&Arc<Slot>, bool) {
        match self.0.get(crate::net::workers::index()) {
            Some(s) => (s, true),
            None => (&self.0[0], false),
        }
    }

    /// Send `req` (origin-form URI, `Host` set) over an idle connection, or a
    /// new one made by `connect`.
    /// (A plain `fn` returning the future: an `async fn` would keep the
    /// request twice in its state, rust-lang/rust#62958.)
    #[allow(clippy::manual_async_fn)] // not an async fn: rust-lang/rust#62958
    pub(super) fn send<'a, C, F, Io>(
        &'a self,
        mut req: Request<ReqBody>,
        connect: C,
    ) -> impl std::future::Future<Output = Result<Response<PooledBody>, SendError>> + 'a
    where
        C: FnOnce() -> F + 'a,
        F: std::future::Future<Output = Result<Io, Box<dyn std::error::Error + Send + Sync>>>,
        Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        async move {
            let (slot, pooled) = self.slot();
            while let Some(mut tx) = pooled.then(|| slot.take()).flatten() {
                // Usually ready at once; a connection whose last response was
                // just read may need its task to run first.
                if tx.ready().await.is_err() {
                    continue;
                }
                match tx.try_send_request(req).await {
                    Ok(resp) => return Ok(wrap(resp, tx, slot, pooled)),
                    Err(mut e) => match e.take_message() {
                        // Not sent (the connection was closing): next one.
                        Some(r) => req = r,
                        None => return Err(SendError::Failed(e.into_error())),
                    },
                }
            }
            // A new connection: the cold path, boxed so that its (large) future
            // is not part of every request's. Its task runs on this thread's
            // runtime, the one whose slot it goes back to.
            let (tx, resp) = Box::pin(async move {
                let io = connect().await.map_err(SendError::Connect)?;
                let (mut tx, conn) = http1::Builder::new()
                    .handshake(io)
                    .await
                    .map_err(|e| SendError::Connect(e.into()))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!(error = %e, "upstream connection ended");
                    }
                });
                let resp = tx.send_request(req);
                Ok::<_, SendError>((tx, resp))
            })
            .await?;
            let resp = resp.await.map_err(SendError::Failed)?;
            Ok(wrap(resp, tx, slot, pooled))
        }
    }

    /// A response body from a connection this pool does not own (HTTP/2),
    /// under the same inactivity timeout.
    pub(super) fn unpooled(&self, inner: Incoming) -> PooledBody {
        PooledBody {
            inner,
            tx: None,
            pool: self.slot().0.clone(),
            timer: IdleTimer::default(),
        }
    }
}

/// The response, its body returning `tx` to `slot` once read to its end
/// (when `pooled`).
fn wrap(resp: Response<Incoming>, tx: Sender, slot: &Arc<Slot>, pooled: bool) -> Response<PooledBody> {
    // A 101 hands the connection to the upgrade: it never comes back.
    let tx = (pooled && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then_some(tx);
    resp.map(|inner| {
        let mut b = PooledBody {
            inner,
            tx,
            pool: slot.clone(),
            timer: IdleTimer::default(),
        };
        b.release_if_done();
        b
    })
}

/// Why an upstream response body ended early.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    #[error("the upstream response body stalled longer than its body_read_timeout")]
    Stalled,
    /// On a route that ends streams with their token: the token expired or
    /// was revoked (the body is cut short on purpose).
    #[error("the stream ended with its token")]
    TokenEnded,
}

/// An upstream response body that returns its connection to the pool once
/// read to the end, and fails when the upstream stalls in the middle.
pub struct PooledBody {
    inner: Incoming,
    /// The connection, until the body is read to its end.
    tx: Option<Sender>,
    /// The pool slot it goes back to (of the worker whose runtime drives it).
    pool: Arc<Slot>,
    timer: IdleTimer,
}

impl PooledBody {
    fn release_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let Some(tx) = self.tx.take() {
                self.pool.put(tx);
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.timer.progress();
                if let Some(tx) = this.tx.take() {
                    this.pool.put(tx);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(f))) => {
                this.timer.progress();
                this.release_if_done();
                Poll::Ready(Some(Ok(f)))
            }
            // An error: the connection is not reusable.
            Poll::Ready(Some(Err(e))) => {
                this.tx = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                if this.timer.poll_expired(cx, this.pool.body_timeout) {
                    // Not reusable: dropped here, and closed by hyper once
                    // this body is dropped before its end.
                    this.tx = None;
                    crate::metrics::upstream_body_timeout(&this.pool.upstream);
                    tracing::warn!(
                        upstream = %this.pool.upstream,
                        backend = %this.pool.backend,
                        timeout = ?this.pool.body_timeout,
                        "upstream response body stalled; response cut off and connection discarded"
                    );
                    return Poll::Ready(Some(Err(UpstreamBodyError::Stalled)));
                }
                Poll::Pending
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
