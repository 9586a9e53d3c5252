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

type Sender = http1::SendRequest<ReqBody>;

struct Idle {
    tx: Sender,
    since: Instant,
}

struct Inner {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Inner {
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

/// One backend's idle connections.
pub(super) struct Pool(Arc<Inner>);

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
    pub(super) fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        let inner = Arc::new(Inner {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        });
        // The sweep holds a weak reference: it ends with the pool (a reload
        // replaces the upstreams).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            let every = (idle_timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match weak.upgrade() {
                        Some(p) => p.sweep(),
                        None => return,
                    }
                }
            });
        }
        Pool(inner)
    }

    /// Send `req` (origin-form URI, `Host` set) over an idle connection, or a
    /// new one made by `connect`.
    pub(super) async fn send<C, F, Io>(
        &self,
        mut req: Request<ReqBody>,
        connect: C,
    ) -> Result<Response<PooledBody>, SendError>
    where
        C: FnOnce() -> F,
        F: std::future::Future<Output = Result<Io, Box<dyn std::error::Error + Send + Sync>>>,
        Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        while let Some(mut tx) = self.0.take() {
            // Usually ready at once; a connection whose last response was
            // just read may need its task to run first.
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, tx)),
                Err(mut e) => match e.take_message() {
                    // Not sent (the connection was closing): next one.
                    Some(r) => req = r,
                    None => return Err(SendError::Failed(e.into_error())),
                },
            }
        }
        // A new connection: the cold path, boxed so that its (large) future
        // is not part of every request's.
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
        Ok(self.wrap(resp, tx))
    }

    fn wrap(&self, resp: Response<Incoming>, tx: Sender) -> Response<PooledBody> {
        // A 101 hands the connection to the upgrade: it never comes back.
        let home = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| (tx, self.0.clone()));
        resp.map(|inner| {
            let mut b = PooledBody { inner, home };
            b.release_if_done();
            b
        })
    }
}

/// An upstream response body that returns its connection to the pool once
/// read to the end.
pub struct PooledBody {
    inner: Incoming,
    home: Option<(Sender, Arc<Inner>)>,
}

impl PooledBody {
    fn release_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let Some((tx, pool)) = self.home.take() {
                pool.put(tx);
            }
        }
    }

    /// For an upstream reached through another client (HTTP/2).
    pub fn unpooled(inner: Incoming) -> PooledBody {
        PooledBody { inner, home: None }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => {
                if let Some((tx, pool)) = this.home.take() {
                    pool.put(tx);
                }
            }
            Poll::Ready(Some(Ok(_))) => this.release_if_done(),
            // An error: the connection is not reusable.
            Poll::Ready(Some(Err(_))) => this.home = None,
            Poll::Pending => {}
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
