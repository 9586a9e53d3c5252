//! Connection-level defences shared by the proxy and the admin listener:
//!
//! - [`ConnLimits`]: the listener's connection cap and a cap per client
//!   address (IPv4 address, IPv6 /64), checked at accept; a connection
//!   over the per-address cap is closed at once and takes no slot of the
//!   listener's cap. A trusted proxy's connection takes only a listener
//!   slot; its PROXY header, when required, keys it on the client.
//! - [`drive`]: runs one connection under a handshake deadline (from accept
//!   until the first request head is complete: first bytes, TLS, protocol
//!   sniffing, the HTTP/2 preface and SETTINGS) and an idle timeout (no
//!   request in flight), closing it gracefully (GOAWAY on HTTP/2) and then,
//!   if the peer does not finish, for good; and a send timeout (responses
//!   wait for a client that takes nothing), dropping it.
//! - [`Tracked`]: the hyper service wrapper that counts a connection's
//!   requests in flight, from the call until the response body is dropped,
//!   with one atomic add at each end (and the `Arc` clone the guard holds),
//!   and marks each poll of a response body with a plain store.
//!
//! One timer per connection, never one per request: hyper's HTTP/1
//! header-read timeout is a deadline the connection's periodic check
//! makes it look at ([`CheckedTimer`]), not a timer of its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;

/// A connection the gateway decided to close is sent GOAWAY (HTTP/2) or
/// closed after the current response (HTTP/1); if it is still open this
/// long afterwards with no request in flight (a peer that never
/// acknowledges the GOAWAY), it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The connection's timer checks it this many times per `idle_timeout` or
/// `send_timeout` (the shorter): a connection is closed between 1 and 1.25
/// times the timeout after it went idle or stalled.
const CHECKS: u32 = 4;

/// Apply the listener settings shared by the proxy and admin listeners to
/// a hyper-util auto builder. Only for connections served by [`drive`]:
/// its HTTP/1 header-read timeout is a [`CheckedTimer`] deadline, which
/// nothing else polls.
pub(crate) fn configure(builder: &mut auto::Builder<TokioExecutor>, s: &ServerConfig) {
    builder
        .http1()
        .timer(CheckedTimer)
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(s.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(s.max_header_bytes as u32)
        .keep_alive_interval(Some(s.h2_keep_alive_interval))
        .keep_alive_timeout(s.h2_keep_alive_timeout);
}

/// hyper's HTTP/1 timer (it times only the header read): its sleeps are
/// deadlines that are looked at when the connection is polled, and never
/// registered with tokio's timer wheel.
///
/// hyper arms the header-read timeout for every request head it waits
/// for, and drops its sleep once the head is in, so with tokio's timer
/// each request cost a boxed `Sleep`, its registration in the wheel and its
/// removal (about 900 instructions, docs/performance.md). A
/// [`CheckedSleep`] registers no waker: [`drive`] wakes the connection at
/// least four times per `header_read_timeout` (its check period counts
/// that timeout too), and its `select!` polls the connection at each
/// wake, so an expired head read is seen within a quarter of the
/// timeout, as the idle and send timeouts are. Only [`drive`]'s
/// connections may use it.
///
/// Read against hyper 1.12 (`Cargo.toml` keeps hyper at `~1.12`): its
/// HTTP/1 server uses the timer for the header read only. A hyper that
/// used it for anything that must wake the task by itself would hang
/// there; re-read `proto/h1/conn.rs` before moving to a newer minor.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CheckedTimer;

/// A deadline hyper polls; see [`CheckedTimer`].
pub(crate) struct CheckedSleep {
    deadline: std::time::Instant,
}

impl Future for CheckedSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // No waker to register: the connection's periodic check polls again.
        if std::time::Instant::now() >= self.deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for CheckedSleep {}

impl hyper::rt::Timer for CheckedTimer {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = std::time::Instant::now();
        self.sleep_until(
            now.checked_add(d)
                .unwrap_or(now + Duration::from_secs(30 * 365 * 86_400)),
        )
    }
    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CheckedSleep { deadline })
    }
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<CheckedSleep>() {
            Some(s) => s.get_mut().deadline = new_deadline,
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// What bounds one connection's life besides its requests.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub handshake: Duration,
    pub idle: Duration,
    pub send: Duration,
    /// hyper's HTTP/1 header-read timeout ([`CheckedTimer`]): only the
    /// period of the checks counts it here.
    pub header_read: Duration,
}

impl Timeouts {
    pub fn from_config(s: &ServerConfig) -> Timeouts {
        Timeouts {
            handshake: s.handshake_timeout,
            idle: s.idle_timeout,
            send: s.send_timeout,
            header_read: s.header_read_timeout,
        }
    }
}

// === per-address and listener caps ===

/// The key of the per-address cap (the failure throttle's too).
pub use crate::issue::AddrKey;

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The listener's `max_connections` are all in use.
    Full,
    /// This client address has `max_connections_per_ip` open.
    PerAddress,
}

/// A listener's connection caps.
pub struct ConnLimits {
    slots: Arc<Semaphore>,
    max: usize,
    addrs: AddrCap,
}

/// The per-address cap alone; cheap to clone into a connection's task, to
/// key a connection on the client address its PROXY header names.
#[derive(Clone)]
pub struct AddrCap {
    per_addr: usize,
    /// Open connections per address; an entry exists only while its count
    /// is above zero, so the map never holds more entries than there are
    /// open connections.
    open: Arc<Mutex<HashMap<AddrKey, u32>>>,
}

/// One admitted connection: its slot of the listener's cap and of its
/// address's (none for a trusted proxy's connection until its PROXY
/// header names the client); both are given back on drop.
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    _addr: Option<AddrSlot>,
}

impl Admission {
    /// Count the connection against its client's address too.
    pub fn key(&mut self, addr: AddrSlot) {
        self._addr = Some(addr);
    }
}

/// One connection's slot of its address's cap.
pub struct AddrSlot {
    key: AddrKey,
    open: Arc<Mutex<HashMap<AddrKey, u32>>>,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let std::collections::hash_map::Entry::Occupied(mut e) = open.entry(self.key) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl AddrCap {
    /// A slot of `ip`'s cap, or [`Refused::PerAddress`].
    pub fn take(&self, ip: IpAddr) -> Result<AddrSlot, Refused> {
        let key = AddrKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n as usize >= self.per_addr {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        Ok(AddrSlot {
            key,
            open: self.open.clone(),
        })
    }
}

impl ConnLimits {
    pub fn new(max: usize, per_addr: usize) -> ConnLimits {
        ConnLimits {
            slots: Arc::new(Semaphore::new(max)),
            max,
            addrs: AddrCap {
                per_addr: per_addr.max(1),
                open: Arc::new(Mutex::new(HashMap::new())),
            },
        }
    }

    /// Admit a connection from `ip`, or say why not. The per-address cap
    /// is checked first, so a refused address takes no listener slot.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refused> {
        // Dropping `addr` on the way out gives the address slot back.
        let addr = self.addrs.take(ip)?;
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                _slot: slot,
                _addr: Some(addr),
            }),
            Err(_) => Err(Refused::Full),
        }
    }

    /// Admit a trusted proxy's connection: the listener's cap only. A
    /// proxy carries many clients, and counting them all against its one
    /// address would cap them together; its PROXY header, when there is
    /// one, keys the connection on the client ([`Admission::key`]).
    pub fn admit_proxy(&self) -> Result<Admission, Refused> {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                _slot: slot,
                _addr: None,
            }),
            Err(_) => Err(Refused::Full),
        }
    }

    /// The per-address cap, for [`Admission::key`].
    pub fn addr_cap(&self) -> AddrCap {
        self.addrs.clone()
    }

    /// Addresses with at least one open connection.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.addrs.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Resolves once every admitted connection has ended.
    pub async fn drained(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }
}

// === requests in flight per connection ===

/// What a connection's requests are doing, as its timer samples it.
///
/// `count`: the low 32 bits count requests in flight, the high 32 bits
/// requests begun (wrapping). One `fetch_add` when a request begins, one
/// `fetch_sub` when its response body is dropped.
///
/// `progress`: a marker that changes at every poll of a response body
/// (bits 1..) and says whether that poll handed data to hyper (bit 0), in
/// which case it is the client's turn: hyper polls the body again only
/// once the client has taken some of it (socket writable, HTTP/2 flow
/// control window open). Written with a plain load and store, not a
/// read-modify-write: two streams racing may lose a step of the marker,
/// which only matters if it then reads the same as at the last check, and
/// costs nothing like a locked instruction on every frame.
#[derive(Default)]
pub struct Activity {
    count: AtomicU64,
    progress: AtomicU64,
}

const BEGUN: u64 = 1 << 32;
const IN_FLIGHT: u64 = BEGUN - 1;

impl Activity {
    fn load(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn begin(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(BEGUN + 1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }
    /// A response head or frame was handed to hyper (`to_client`), or the
    /// body is waiting for its source or done.
    fn mark(&self, to_client: bool) {
        let p = self.progress.load(Ordering::Relaxed);
        self.progress
            .store((p.wrapping_add(2) & !1) | to_client as u64, Ordering::Relaxed);
    }
    fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }
}

fn in_flight(v: u64) -> u64 {
    v & IN_FLIGHT
}

fn begun(v: u64) -> u64 {
    v >> 32
}

/// One request in flight; ends when dropped.
pub struct InFlightGuard(Arc<Activity>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper service that counts its connection's requests in flight.
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

/// The inner service's future; hands the in-flight guard to the response
/// body (or drops it with an error or a cancelled request).
pub struct TrackedFuture<F> {
    inner: F,
    guard: Option<InFlightGuard>,
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        let guard = this.guard.take();
        if let Some(g) = &guard {
            // The head is the client's to take now.
            g.0.mark(true);
        }
        Poll::Ready(r.map(|resp| resp.map(|inner| TrackedBody { inner, _guard: guard })))
    }
}

/// A response body that keeps its request counted until it is dropped
/// (sent in full, or abandoned).
pub struct TrackedBody<B> {
    inner: B,
    _guard: Option<InFlightGuard>,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(g) = &this._guard {
            g.0.mark(matches!(r, Poll::Ready(Some(Ok(_)))));
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

// === one connection ===

/// Why the gateway closed a connection (for metrics and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The peer or hyper ended it.
    Normally,
    /// No complete request head before the handshake deadline.
    Handshake,
    /// No request in flight for `idle_timeout`.
    Idle,
    /// Responses waited for the client to take them for `send_timeout`.
    Send,
    /// The listener is shutting down.
    Shutdown,
}

/// The connection's check timer, polled only when it may have fired.
///
/// tokio's `Sleep` registers the task's waker again at every poll (a few
/// hundred instructions), and the connection's task wakes two or more
/// times per request, each time polling every branch of [`drive`]'s
/// `select!`. Once a `Sleep` has been polled with a waker it wakes that
/// task when it fires, and from then on reads as elapsed; until then a
/// poll with a waker that wakes the same task would find nothing. So it
/// is polled when it reads as elapsed, when it was reset since its last
/// poll, or when the task's waker is another one.
struct QuietTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The waker the sleep was last polled with, while it is registered
    /// for its current deadline.
    registered: Option<std::task::Waker>,
}

impl QuietTimer {
    fn new(deadline: Instant) -> QuietTimer {
        QuietTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            registered: None,
        }
    }

    fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.registered = None;
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(w) = &self.registered {
            if w.will_wake(cx.waker()) && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.registered = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    self.registered = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Serve one connection until it ends, closing it when it misses the
/// handshake `deadline` (counted from accept, so a TLS handshake before
/// this call has used part of it), idles for `t.idle`, or `shutdown` turns
/// true, and dropping it when its client takes no response data for
/// `t.send`; says which.
pub async fn drive<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    svc: S,
    activity: &Activity,
    t: Timeouts,
    deadline: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> Closed
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    // Four checks per shortest timeout, the header read's included: its
    // deadline is seen only when the connection is polled (CheckedTimer).
    let check = (t.idle.min(t.send).min(t.header_read) / CHECKS).max(Duration::from_millis(1));
    let handshake = tokio::time::sleep_until(deadline);
    tokio::pin!(handshake);
    let mut awaiting_first = true;
    let mut timer = QuietTimer::new(Instant::now() + check);
    // What the last check saw, and since when the connection has been idle
    // (nothing begun, nothing ended, nothing in flight) or stalled (a
    // response handed to hyper and no body polled since: the client takes
    // nothing), as far as the checks can tell.
    let mut last_check = Instant::now();
    let mut last = activity.load();
    let mut last_progress = activity.progress();
    let mut idle_since: Option<Instant> = None;
    let mut stalled_since: Option<Instant> = None;
    // Set once the gateway has begun to close the connection: why, and
    // when to drop it if it is still open with nothing in flight.
    let mut closing: Option<(Closed, Instant)> = None;
    // The shutdown signal as one future for the connection's life: it
    // stays registered with the channel between polls, so a wake-up of
    // the connection (two or more per request) costs no new registration.
    let shutdown_now = *shutdown.borrow();
    let stop = async move {
        while shutdown.changed().await.is_ok() {
            if *shutdown.borrow() {
                return;
            }
        }
    };
    tokio::pin!(stop);
    if shutdown_now {
        conn.as_mut().graceful_shutdown();
        closing = Some((Closed::Shutdown, Instant::now() + CLOSE_GRACE));
        timer.reset(Instant::now() + CLOSE_GRACE);
    }
    loop {
        // Biased: the connection first (it is why the task woke, nearly
        // always), and no random branch order drawn per wake-up.
        tokio::select! {
            biased;
            _ = conn.as_mut() => return closing.map_or(Closed::Normally, |(why, _)| why),
            _ = &mut stop, if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((Closed::Shutdown, Instant::now() + CLOSE_GRACE));
                timer.reset(Instant::now() + CLOSE_GRACE);
            }
            _ = &mut handshake, if awaiting_first && closing.is_none() => {
                awaiting_first = false;
                if begun(activity.load()) == 0 {
                    conn.as_mut().graceful_shutdown();
                    closing = Some((Closed::Handshake, Instant::now() + CLOSE_GRACE));
                    timer.reset(Instant::now() + CLOSE_GRACE);
                }
            }
            _ = std::future::poll_fn(|cx| timer.poll_fired(cx)) => {
                let now = Instant::now();
                let count = activity.load();
                let progress = activity.progress();
                if in_flight(count) > 0 && progress == last_progress && progress & 1 == 1 {
                    stalled_since.get_or_insert(last_check);
                } else {
                    stalled_since = None;
                }
                if count == last && in_flight(count) == 0 {
                    idle_since.get_or_insert(last_check);
                } else {
                    idle_since = None;
                }
                (last_check, last, last_progress) = (now, count, progress);
                // A client that takes nothing would not take a GOAWAY
                // either, and its responses never finish: drop it.
                if stalled_since.is_some_and(|t0| now - t0 >= t.send) {
                    return Closed::Send;
                }
                match closing {
                    // Closing and still open: drop it once nothing is in
                    // flight (a request may have raced the GOAWAY).
                    Some((why, drop_at)) if now >= drop_at && in_flight(count) == 0 => return why,
                    Some(_) => {}
                    None if idle_since.is_some_and(|t0| now - t0 >= t.idle) => {
                        conn.as_mut().graceful_shutdown();
                        closing = Some((Closed::Idle, now + CLOSE_GRACE));
                    }
                    None => {}
                }
                let next = match closing {
                    Some((_, drop_at)) if drop_at > now => drop_at.min(now + check),
                    _ => now + check,
                };
                timer.reset(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_by_ipv4_or_ipv6_slash_64() {
        let k = |s: &str| AddrKey::of(s.parse().unwrap());
        assert_eq!(k("192.0.2.1"), k("::ffff:192.0.2.1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        // An IPv6 address whose /64 happens to spell an IPv4 address is
        // still an IPv6 key.
        assert_ne!(k("::c000:201"), k("192.0.2.1"));
    }

    #[test]
    fn per_address_cap_refuses_without_taking_a_slot_and_the_map_is_pruned() {
        let limits = ConnLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refused::PerAddress));
        // The refused one took no listener slot: one is left for b.
        let b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit("10.0.0.9".parse().unwrap()).err(), Some(Refused::Full));
        // A refusal for a full listener leaves no entry behind.
        assert_eq!(limits.addresses(), 2);
        drop(a1);
        let a3 = limits.admit(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(limits.addresses(), 0, "entries go when their count drops to zero");
        assert_eq!(limits.slots.available_permits(), 3);
    }

    #[test]
    fn a_proxy_connection_takes_a_listener_slot_and_is_keyed_on_its_client() {
        let limits = ConnLimits::new(3, 1);
        let mut p1 = limits.admit_proxy().unwrap();
        let p2 = limits.admit_proxy().unwrap();
        assert_eq!(limits.addresses(), 0, "the proxy's own address is not counted");
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        p1.key(limits.addr_cap().take(client).unwrap());
        assert_eq!(limits.addr_cap().take(client).err(), Some(Refused::PerAddress));
        assert_eq!(limits.admit(client).err(), Some(Refused::PerAddress));
        let _other = limits.admit("203.0.113.8".parse().unwrap()).unwrap();
        assert_eq!(limits.admit_proxy().err(), Some(Refused::Full));
        drop((p1, p2));
        assert_eq!(limits.addresses(), 1);
        assert_eq!(limits.slots.available_permits(), 2);
    }

    #[test]
    fn activity_counts_in_flight_and_begun() {
        let a = Arc::new(Activity::default());
        let g1 = a.begin();
        let g2 = a.begin();
        assert_eq!(in_flight(a.load()), 2);
        assert_eq!(begun(a.load()), 2);
        drop(g1);
        drop(g2);
        assert_eq!(in_flight(a.load()), 0);
        assert_eq!(begun(a.load()), 2);
    }
}
