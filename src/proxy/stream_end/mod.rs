//! Streams that end with their token: on a route with
//! `end_streams_with_token = true`, a WebSocket tunnel or a streaming
//! response body opened with a token is closed when that token expires or
//! is revoked (docs/streams.md).
//!
//! - [`TokenLife`]: what a stream keeps of its token (`exp`, `jti`, `cid`)
//!   and the future that resolves when the token's life ends: a timer at
//!   `exp`, and a wait on the revocation set's change counter (bumped by
//!   every write of the set, on no request), re-checking the ids.
//! - [`splice`]: the WebSocket tunnel. Both directions are tracked frame by
//!   frame ([`frames`]); at the end each side gets a close frame (1008,
//!   "token expired" / "token revoked") at its next frame boundary, masked
//!   towards the upstream, and both connections close after a short grace.
//! - [`EndingBody`]: a streaming response body. A `text/event-stream` ends
//!   after a final `tilegate-token-expired` / `tilegate-token-revoked` event
//!   put at an event boundary ([`sse`]); any other streaming body ends with
//!   an error, so the client sees an incomplete transfer.
//!
//! Nothing of this runs for a route without the option.

pub mod frames;
pub mod sse;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::auth::revocation::Revocations;
use crate::auth::Verified;

use super::{PooledBody, UpstreamBodyError};
use frames::FrameTracker;
use sse::SseTracker;

/// The WebSocket close code sent when the token ends: policy violation.
pub const CLOSE_POLICY: u16 = 1008;
/// How long a side may take to reach a frame or event boundary once the
/// token has ended; past it the stream is cut without a final frame.
const BOUNDARY_WAIT: Duration = Duration::from_secs(2);
/// How long the tunnel stays open after the close frames, for the peers'
/// own close frames to pass (they are read and dropped).
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Why a stream's token stopped being good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEnd {
    Expired,
    Revoked,
}

impl TokenEnd {
    /// The WebSocket close reason.
    pub fn reason(self) -> &'static str {
        match self {
            TokenEnd::Expired => "token expired",
            TokenEnd::Revoked => "token revoked",
        }
    }

    /// The metric label (`tilegate_streams_ended_total{reason}`).
    pub fn label(self) -> &'static str {
        match self {
            TokenEnd::Expired => "expired",
            TokenEnd::Revoked => "revoked",
        }
    }

    /// The final server-sent event.
    pub fn sse_event(self) -> Bytes {
        Bytes::from_static(match self {
            TokenEnd::Expired => b"event: tilegate-token-expired\ndata: {\"error\":\"token_expired\"}\n\n",
            TokenEnd::Revoked => b"event: tilegate-token-revoked\ndata: {\"error\":\"token_revoked\"}\n\n",
        })
    }
}

/// What a stream keeps of the token that opened it.
#[derive(Debug, Clone)]
pub struct TokenLife {
    exp: Option<i64>,
    jti: Option<Box<str>>,
    cid: Option<Box<str>>,
    revocations: Arc<Revocations>,
}

impl TokenLife {
    pub fn of(v: &Verified, revocations: &Arc<Revocations>) -> TokenLife {
        TokenLife {
            exp: v.exp,
            jti: v.jti().map(Box::from),
            cid: v.cid().map(Box::from),
            revocations: revocations.clone(),
        }
    }

    /// Resolves when the token expires (at `exp`) or is revoked (within a
    /// wake-up of the revocation reaching this replica's set).
    pub async fn ended(&self) -> TokenEnd {
        let mut changes = self.revocations.subscribe();
        let expiry = async {
            match self.exp {
                Some(exp) => {
                    let left = exp
                        .saturating_mul(1000)
                        .saturating_sub(crate::clock::now_millis())
                        .max(0);
                    tokio::time::sleep(Duration::from_millis(left as u64)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        loop {
            // The receiver marked the value seen before this check, so a
            // revocation after it wakes the wait below.
            if self.revocations.is_revoked(self.jti.as_deref(), self.cid.as_deref()) {
                return TokenEnd::Revoked;
            }
            tokio::select! {
                _ = &mut expiry => return TokenEnd::Expired,
                r = changes.changed() => if r.is_err() {
                    // The set is gone (it never is while this holds it).
                    std::future::pending::<()>().await;
                },
            }
        }
    }

    /// A client response on the route: a streaming body (no
    /// `Content-Length`) ends with the token; any other passes through as
    /// it is.
    pub fn guard_response(self, resp: Response<PooledBody>) -> Response<EndingBody> {
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
            });
        // A body with a length ends on its own (and one cut or lengthened
        // here would contradict its `Content-Length`).
        let streaming = !resp.headers().contains_key(CONTENT_LENGTH);
        resp.map(|inner| {
            if !streaming || inner.is_end_stream() {
                return EndingBody::passing(inner);
            }
            let (tx, rx) = oneshot::channel();
            let life = self;
            tokio::spawn(async move {
                let mut tx = tx;
                tokio::select! {
                    end = life.ended() => { let _ = tx.send(end); }
                    // The body was dropped (the stream ended on its own).
                    _ = tx.closed() => {}
                }
            });
            EndingBody {
                inner,
                end: Some(rx),
                sse: sse.then(SseTracker::default),
                phase: Phase::Streaming,
            }
        })
    }
}

// === the response body ===

/// A response body that ends when its token does (or passes through).
pub struct EndingBody {
    inner: PooledBody,
    end: Option<oneshot::Receiver<TokenEnd>>,
    /// For `text/event-stream`: where the events end.
    sse: Option<SseTracker>,
    phase: Phase,
}

enum Phase {
    Streaming,
    /// The token ended; waiting for an event boundary, at most until the
    /// deadline.
    Ending(TokenEnd, Pin<Box<tokio::time::Sleep>>),
    /// At a boundary: the final event is next.
    Final(TokenEnd),
    Done,
}

impl EndingBody {
    fn passing(inner: PooledBody) -> EndingBody {
        EndingBody {
            inner,
            end: None,
            sse: None,
            phase: Phase::Streaming,
        }
    }

    /// The token ended with no boundary in reach: for an event stream the
    /// final event when at a boundary, else an error (an incomplete
    /// transfer the client can tell from a complete one).
    fn finish(&mut self, end: TokenEnd) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        self.phase = Phase::Done;
        match self.sse {
            Some(s) if s.at_boundary() => Poll::Ready(Some(Ok(Frame::data(end.sse_event())))),
            _ => Poll::Ready(Some(Err(UpstreamBodyError::TokenEnded))),
        }
    }
}

impl HttpBody for EndingBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Final(end) => {
                    let end = *end;
                    return this.finish(end);
                }
                Phase::Streaming => {
                    if let Some(rx) = &mut this.end {
                        match Pin::new(rx).poll(cx) {
                            Poll::Ready(Ok(end)) => {
                                this.end = None;
                                tracing::info!(reason = end.reason(), "stream ended with its token");
                                crate::metrics::stream_ended(end.label());
                                if this.sse.is_some_and(SseTracker::at_boundary) || this.sse.is_none() {
                                    return this.finish(end);
                                }
                                let deadline = Box::pin(tokio::time::sleep(BOUNDARY_WAIT));
                                this.phase = Phase::Ending(end, deadline);
                                continue;
                            }
                            Poll::Ready(Err(_)) => this.end = None,
                            Poll::Pending => {}
                        }
                    }
                    let f = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
                    if let (Some(Ok(f)), Some(s)) = (&f, &mut this.sse) {
                        if let Some(d) = f.data_ref() {
                            s.feed(d);
                        }
                    }
                    return Poll::Ready(f);
                }
                Phase::Ending(end, deadline) => {
                    let end = *end;
                    match Pin::new(&mut this.inner).poll_frame(cx) {
                        Poll::Ready(Some(Ok(f))) => {
                            let Ok(mut data) = f.into_data() else { continue };
                            let s = this.sse.as_mut().expect("only event streams wait for a boundary");
                            if let Some(p) = s.boundary_in(&data) {
                                let head = data.split_to(p);
                                s.feed(&head);
                                this.phase = Phase::Final(end);
                                return Poll::Ready(Some(Ok(Frame::data(head))));
                            }
                            s.feed(&data);
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Poll::Ready(None) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Some(Err(e))) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                        Poll::Pending => {
                            std::task::ready!(deadline.as_mut().poll(cx));
                            return this.finish(end);
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.phase {
            Phase::Done => true,
            Phase::Final(_) => false,
            _ => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.end.is_none() && matches!(self.phase, Phase::Streaming) {
            return self.inner.size_hint();
        }
        // A final event may be added.
        SizeHint::default()
    }
}

// === the WebSocket tunnel ===

/// The tunnel between a client and an upstream after a WebSocket upgrade:
/// bytes copied both ways, and with a [`TokenLife`], closed with 1008 when
/// the token ends.
pub async fn splice<C, U>(mut client: C, mut upstream: U, life: Option<TokenLife>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let Some(life) = life else {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    };
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let (stop_tx, stop_rx) = watch::channel(None::<TokenEnd>);
    let closed = {
        let down = pump(&mut ur, &mut cw, stop_rx.clone(), Side::ToClient);
        let up = pump(&mut cr, &mut uw, stop_rx, Side::ToUpstream);
        let both = async { tokio::join!(down, up) };
        tokio::pin!(both);
        let ended = life.ended();
        tokio::pin!(ended);
        let mut fired = false;
        loop {
            tokio::select! {
                r = &mut both => break r,
                end = &mut ended, if !fired => {
                    fired = true;
                    tracing::info!(reason = end.reason(), "WebSocket closed with its token");
                    crate::metrics::stream_ended(end.label());
                    let _ = stop_tx.send(Some(end));
                }
            }
        }
    };
    if matches!(closed, (Pumped::Closed, _) | (_, Pumped::Closed)) {
        // Let the peers' close replies pass (read and dropped), then close.
        let mut sink = [0u8; 1024];
        let drain = async {
            let a = async { while matches!(cr.read(&mut sink).await, Ok(n) if n > 0) {} };
            let mut sink2 = [0u8; 1024];
            let b = async { while matches!(ur.read(&mut sink2).await, Ok(n) if n > 0) {} };
            tokio::join!(a, b)
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = cw.shutdown().await;
        let _ = uw.shutdown().await;
    })
    .await;
}

#[derive(Debug, Clone, Copy)]
enum Side {
    ToClient,
    ToUpstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pumped {
    /// The reader ended (or an error): the writer was shut down.
    Eof,
    /// The token ended and the close frame went out.
    Closed,
    /// The token ended, but no frame boundary came in time.
    Cut,
}

/// Copy `r` to `w`, tracking frames; once `stop` says the token ended,
/// write a close frame at the next frame boundary and stop.
async fn pump<R, W>(r: &mut R, w: &mut W, mut stop: watch::Receiver<Option<TokenEnd>>, side: Side) -> Pumped
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = FrameTracker::new();
    let mut ending: Option<(TokenEnd, Pin<Box<tokio::time::Sleep>>)> = None;
    let mut watching = true;
    loop {
        if let Some((end, _)) = &ending {
            if frames.at_boundary() {
                return close(w, *end, side).await;
            }
        }
        let n = tokio::select! {
            biased;
            r = stop.changed(), if watching && ending.is_none() => {
                match r {
                    Ok(()) => {
                        if let Some(end) = *stop.borrow_and_update() {
                            ending = Some((end, Box::pin(tokio::time::sleep(BOUNDARY_WAIT))));
                        }
                    }
                    // The splice is gone: nothing will stop this pump.
                    Err(_) => watching = false,
                }
                continue;
            }
            _ = async { match &mut ending { Some((_, d)) => d.as_mut().await, None => std::future::pending().await } } => {
                return Pumped::Cut;
            }
            n = r.read(&mut buf) => n,
        };
        let n = match n {
            Ok(0) | Err(_) => {
                let _ = w.shutdown().await;
                return Pumped::Eof;
            }
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let upto = match ending {
            Some(_) => frames.boundary_in(chunk).unwrap_or(n),
            None => n,
        };
        if w.write_all(&chunk[..upto]).await.is_err() {
            return Pumped::Eof;
        }
        frames.feed(&chunk[..upto]);
    }
}

async fn close<W: AsyncWrite + Unpin>(w: &mut W, end: TokenEnd, side: Side) -> Pumped {
    let mask = match side {
        Side::ToClient => None,
        Side::ToUpstream => {
            let mut key = [0u8; 4];
            // A masking key need not be secret, only unpredictable to the
            // page that could otherwise shape the bytes on the wire.
            if aws_lc_rs::rand::fill(&mut key).is_err() {
                key = (crate::clock::now_millis() as u32).to_be_bytes();
            }
            Some(key)
        }
    };
    let frame = frames::close_frame(CLOSE_POLICY, end.reason(), mask);
    let _ = w.write_all(&frame).await;
    let _ = w.flush().await;
    Pumped::Closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    fn life(revocations: &Arc<Revocations>, exp: Option<i64>) -> TokenLife {
        TokenLife {
            exp,
            jti: Some("jti-1".into()),
            cid: Some("key-1".into()),
            revocations: revocations.clone(),
        }
    }

    /// Real WebSocket peers on both sides of the splice: each gets a close
    /// frame it accepts (the upstream's masked, as a server demands).
    #[tokio::test]
    async fn a_revocation_closes_both_sides_with_1008() {
        let revs = Arc::new(Revocations::new());
        let (client_io, gw_client) = tokio::io::duplex(64 * 1024);
        let (gw_up, up_io) = tokio::io::duplex(64 * 1024);
        let splice = tokio::spawn(splice(gw_client, gw_up, Some(life(&revs, None))));
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut up = WebSocketStream::from_raw_socket(up_io, Role::Server, None).await;
        client.send(Message::text("hi")).await.unwrap();
        assert_eq!(up.next().await.unwrap().unwrap(), Message::text("hi"));
        up.send(Message::text("there")).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("there"));
        revs.insert("other", None);
        up.send(Message::text("still open")).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("still open"));
        revs.insert("key-1", None);
        for peer in [&mut client, &mut up] {
            let m = tokio::time::timeout(Duration::from_secs(2), peer.next()).await.unwrap();
            match m {
                Some(Ok(Message::Close(Some(f)))) => {
                    assert_eq!(f.code, CloseCode::Policy);
                    assert_eq!(f.reason.as_str(), "token revoked");
                }
                other => panic!("a close frame, not {other:?}"),
            }
        }
        tokio::time::timeout(Duration::from_secs(3), splice)
            .await
            .unwrap()
            .unwrap();
    }

    /// The token ends while a frame is half through: the frame is passed
    /// whole, the close frame follows it, and nothing after.
    #[tokio::test]
    async fn the_close_frame_waits_for_the_end_of_a_frame() {
        let revs = Arc::new(Revocations::new());
        let (mut client, gw_client) = tokio::io::duplex(64 * 1024);
        let (gw_up, mut up) = tokio::io::duplex(64 * 1024);
        let splice = tokio::spawn(splice(gw_client, gw_up, Some(life(&revs, None))));
        // A 200-byte binary frame (16-bit length), then another.
        let mut first = vec![0x82, 126, 0, 200];
        first.extend(std::iter::repeat_n(7u8, 200));
        let second = [0x81, 2, b'n', b'o'];
        up.write_all(&first[..50]).await.unwrap();
        let mut got = vec![0u8; 50];
        client.read_exact(&mut got).await.unwrap();
        revs.insert("jti-1", None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut rest = first[50..].to_vec();
        rest.extend_from_slice(&second);
        up.write_all(&rest).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        got.extend(out);
        let mut expect = first.clone();
        expect.extend(frames::close_frame(CLOSE_POLICY, "token revoked", None));
        assert_eq!(got, expect);
        tokio::time::timeout(Duration::from_secs(3), splice)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn expiry_ends_the_life_and_a_revocation_before_it_wins() {
        let revs = Arc::new(Revocations::new());
        let soon = crate::clock::now_unix() + 1;
        let end = tokio::time::timeout(Duration::from_secs(3), life(&revs, Some(soon)).ended()).await;
        assert_eq!(end.unwrap(), TokenEnd::Expired);
        revs.insert("key-1", None);
        let far = crate::clock::now_unix() + 3600;
        let end = tokio::time::timeout(Duration::from_secs(1), life(&revs, Some(far)).ended()).await;
        assert_eq!(end.unwrap(), TokenEnd::Revoked);
    }
}
