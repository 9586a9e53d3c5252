//! Bodies under hostile or broken peers.
//!
//! - [`IdleTimer`]: an inactivity timer for a body being read (a client
//!   trickling its upload one byte at a time, an upstream stalling in the
//!   middle of its response). It runs only while the reader waits on the
//!   peer: armed when the body is polled and not ready, disarmed by the next
//!   frame. A body whose data is there when polled (a small tile that came
//!   with its head) never arms it, so it costs no timer and no allocation.
//! - [`ClientBody`]: the client's request body while its request is served
//!   (token endpoints read it; proxied routes stream it upstream), with the
//!   inactivity timer of `server.body_read_timeout`, and **lingering
//!   close**: when it is dropped before its end on HTTP/1 (an early 401, 413
//!   or 400, an upstream that answered or failed before reading it), the
//!   rest is read and discarded for at most `server.lingering_time` and
//!   `server.lingering_bytes`, as nginx's `lingering_close` does, so that
//!   the early answer reaches a client that is still sending instead of
//!   being lost in a TCP reset (Python's urllib saw a broken pipe).
//!
//! Why a drain task works: hyper's HTTP/1 server writes the response while
//! the request body is still being read, and keeps reading it for as long as
//! someone polls the body. Dropping the body instead makes hyper close the
//! connection with unread bytes in the socket, which the kernel answers
//! with a reset that can destroy the response before the client reads it.
//! HTTP/2 needs none of this: dropping the body resets only that stream
//! (`NO_ERROR` once the response is complete) and the connection stays.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, EXPECT};
use http::{StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// An inactivity timer for a body being read; see the module docs.
#[derive(Default)]
pub struct IdleTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTimer {
    /// Call when the body was polled and is not ready. True once it has
    /// waited `idle` since the last frame (or since the first wait).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, idle: Duration) -> bool {
        if !self.armed {
            let deadline = Instant::now() + idle;
            match &mut self.sleep {
                Some(s) => s.as_mut().reset(deadline),
                // The first wait of this body: the only allocation.
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match &mut self.sleep {
            Some(s) => s.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    /// A frame arrived: the next wait starts a new period.
    pub fn progress(&mut self) {
        self.armed = false;
    }

    /// Whether the reader is waiting on the peer right now.
    pub fn waiting(&self) -> bool {
        self.armed
    }
}

/// Bounds of lingering close.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    pub time: Duration,
    pub bytes: u64,
}

/// Read and discard what is left of `body` in a task, for at most
/// `l.time` and `l.bytes`; then drop it (hyper then closes the connection
/// if the body has not ended).
pub fn linger(body: Incoming, l: Linger) {
    if l.time.is_zero() || body.is_end_stream() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    crate::metrics::request_body_lingered();
    rt.spawn(async move {
        let mut body = body;
        let mut read = 0u64;
        let _ = tokio::time::timeout(l.time, async {
            while let Some(Ok(f)) = body.frame().await {
                if let Some(d) = f.data_ref() {
                    read += d.len() as u64;
                    if read > l.bytes {
                        return;
                    }
                }
            }
        })
        .await;
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not read to its end yet.
    Open,
    /// Read to its end (or empty).
    Ended,
    /// Timed out or failed: dropped without lingering.
    Abandoned,
    /// Handed on (to the upstream request); this one is an empty shell.
    Moved,
}

/// Why reading a client body failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body stalled longer than server.body_read_timeout")]
    TimedOut,
    #[error("the request body could not be read: {0}")]
    Read(#[from] hyper::Error),
}

/// The client's request body; see the module docs.
pub struct ClientBody {
    inner: Option<Incoming>,
    state: State,
    timer: IdleTimer,
    idle: Duration,
    /// `None` when the connection is not HTTP/1 or lingering is off.
    linger: Option<Linger>,
    /// `Expect: 100-continue`, and nothing was read yet: the client waits
    /// for a go-ahead that an early answer never gives, so there is nothing
    /// to drain.
    awaiting_continue: bool,
}

impl ClientBody {
    pub fn new(body: Incoming, parts: &http::request::Parts, server: &ServerConfig) -> ClientBody {
        if body.is_end_stream() {
            // Body-less requests (the usual GET): nothing else is looked at.
            return ClientBody {
                inner: Some(body),
                state: State::Ended,
                timer: IdleTimer::default(),
                idle: server.body_read_timeout,
                linger: None,
                awaiting_continue: false,
            };
        }
        let h1 = parts.version < Version::HTTP_2;
        ClientBody {
            inner: Some(body),
            state: State::Open,
            timer: IdleTimer::default(),
            idle: server.body_read_timeout,
            linger: (h1 && !server.lingering_time.is_zero()).then_some(Linger {
                time: server.lingering_time,
                bytes: server.lingering_bytes,
            }),
            awaiting_continue: parts
                .headers
                .get(EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        }
    }

    /// A request without a body, for driving the request stack in-process.
    #[cfg(test)]
    pub(crate) fn none(server: &ServerConfig) -> ClientBody {
        ClientBody {
            inner: None,
            state: State::Ended,
            timer: IdleTimer::default(),
            idle: server.body_read_timeout,
            linger: None,
            awaiting_continue: false,
        }
    }

    /// Take the body to hand it on, leaving an empty shell.
    pub fn take(&mut self) -> ClientBody {
        let shell = ClientBody {
            inner: None,
            state: State::Moved,
            timer: IdleTimer::default(),
            idle: self.idle,
            linger: None,
            awaiting_continue: false,
        };
        std::mem::replace(self, shell)
    }

    /// Whether the body was neither read to its end nor given up on (so
    /// dropping it now drains it).
    pub fn unfinished(&self) -> bool {
        self.state == State::Open && self.inner.as_ref().is_some_and(|b| !b.is_end_stream())
    }

    /// Whether reading waits on the client right now.
    pub fn waiting(&self) -> bool {
        self.timer.waiting()
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        if this.state != State::Open {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.awaiting_continue = false;
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.timer.progress();
                if inner.is_end_stream() {
                    this.state = State::Ended;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(None) => {
                this.timer.progress();
                this.state = State::Ended;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // The client went away or sent a broken framing: no answer
                // will reach it, so nothing to linger for.
                this.timer.progress();
                this.state = State::Abandoned;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                if this.timer.poll_expired(cx, this.idle) {
                    this.timer.progress();
                    this.state = State::Abandoned;
                    crate::metrics::request_body_timeout();
                    return Poll::Ready(Some(Err(ClientBodyError::TimedOut)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state != State::Open || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, self.state) {
            (Some(b), State::Open) => b.size_hint(),
            _ => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        if self.state != State::Open || self.awaiting_continue {
            return;
        }
        if let (Some(body), Some(l)) = (self.inner.take(), self.linger) {
            linger(body, l);
        }
    }
}

/// On an HTTP/1 connection, an answer given while the request body is not
/// read to its end, and a 408 or 413, close the connection after the
/// response (`Connection: close`): the rest of the body is drained, not
/// parsed as a next request.
pub fn close_if_unfinished<B>(version: Version, body: &ClientBody, resp: &mut http::Response<B>) {
    if version >= Version::HTTP_2 {
        return;
    }
    let status = resp.status();
    if body.unfinished() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
}
