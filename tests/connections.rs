//! Connection-level limits through the real binary: the handshake
//! deadline (silent sockets, an HTTP/2 preface alone, h2c off, TLS), the
//! HTTP/2 idle timeout, the send timeout (a client that takes nothing), the
//! per-address cap, and the admin listener's timeouts and caps. Each test uses small limits and asserts what happens
//! (closed, refused, served), waiting at most a generous bound for
//! "eventually closed".

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that must happen "eventually"
/// (the limits under test are one or two seconds).
const EVENTUALLY: Duration = Duration::from_secs(30);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame (length 0, type 4, no flags, stream 0).
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A TCP connection to `to` from the loopback address `from` (any of
/// 127.0.0.0/8 works on Linux without configuration).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// Read until the gateway closes the connection (EOF or reset) and return
/// what it sent; `None` if it is still open after `within`.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().map(|_| got)
}

/// Send `GET path` on an open connection and return the status, or `None`
/// when the connection is closed without an answer.
async fn get_status(s: &mut TcpStream, path: &str) -> Option<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(EVENTUALLY, s.read(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1)?.parse().ok()
}

/// A new connection from `from` is answered `GET path` with 200; retried
/// for a while, since a closed peer's slot is given back a moment after
/// its socket is closed.
async fn served_eventually(from: &str, to: SocketAddr, path: &str) -> bool {
    let until = tokio::time::Instant::now() + EVENTUALLY;
    while tokio::time::Instant::now() < until {
        let mut s = connect_from(from, to).await;
        if get_status(&mut s, path).await == Some(200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `n` connections to `to` that send `bytes` (maybe nothing) and then
/// nothing more; returned once the gateway has accepted all of them.
async fn hold(n: usize, from: &str, to: SocketAddr, bytes: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut s = connect_from(from, to).await;
        if !bytes.is_empty() {
            s.write_all(bytes).await.unwrap();
        }
        held.push(s);
    }
    held
}

/// The metric `series` once it reads `want` (counters of closed
/// connections are bumped just after the socket is closed); the last value
/// read if it never does within the bound.
async fn metric_reaches(gw: &Gateway, series: &str, want: f64) -> f64 {
    let until = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let v = metric(gw, series).await;
        if v == want || tokio::time::Instant::now() >= until {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The frame types in a sequence of HTTP/2 frames (the server's side).
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}
const GOAWAY: u8 = 7;

/// Fill the proxy listener (`max_connections` = 2) with connections that
/// send `bytes` and then nothing; a third is refused while they are open
/// (`tilegate_connections_refused_total`); all are closed by the handshake
/// deadline, and then a new client is served. Returns what each held
/// connection received before it was closed.
async fn idle_connections_are_closed(server: &str, bytes: &[u8]) -> Vec<Vec<u8>> {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(
        &up.url(),
        &format!("max_connections = 2\nhandshake_timeout = \"3s\"\n{server}"),
        "",
    )
    .await;
    let mut held = hold(2, "127.0.0.1", gw.addr, bytes).await;
    // The listener is full: one more is closed without an answer and
    // counted as refused (not as timed out).
    let mut extra = connect_from("127.0.0.1", gw.addr).await;
    assert_eq!(get_status(&mut extra, "/public/x").await, None);
    assert_eq!(metric(&gw, "tilegate_connections_refused_total").await, 1.0);
    let mut sent = Vec::new();
    for s in held.iter_mut() {
        sent.push(
            closed_by_peer(s, EVENTUALLY)
                .await
                .expect("the gateway closes a connection that makes no request"),
        );
    }
    assert!(served_eventually("127.0.0.1", gw.addr, "/public/x").await);
    assert_eq!(
        metric_reaches(&gw, "tilegate_connections_timed_out_total{phase=\"handshake\"}", 2.0).await,
        2.0
    );
    assert_eq!(up.seen.count(), 1, "only the served request reached the upstream");
    sent
}

#[tokio::test]
async fn silent_sockets_are_closed_at_the_handshake_deadline_and_new_clients_served() {
    let sent = idle_connections_are_closed("", b"").await;
    assert!(sent.iter().all(|s| s.is_empty()), "nothing is answered to nothing");
}

#[tokio::test]
async fn silent_sockets_are_closed_with_h2c_off() {
    idle_connections_are_closed("h2c = false\n", b"").await;
}

#[tokio::test]
async fn a_partial_request_head_is_closed_at_the_handshake_deadline() {
    // Also under hyper's own header_read_timeout (10 s by default): the
    // handshake deadline is the shorter one here.
    idle_connections_are_closed("", b"GET /public/x HTTP/1.1\r\nHost: x\r\n").await;
}

#[tokio::test]
async fn an_h2_preface_without_a_request_is_closed_with_goaway() {
    let mut hello = H2_PREFACE.to_vec();
    hello.extend_from_slice(H2_SETTINGS);
    for sent in idle_connections_are_closed("", &hello).await {
        let types = h2_frame_types(&sent);
        assert!(types.contains(&GOAWAY), "frames {types:?}");
    }
}

#[tokio::test]
async fn per_address_cap_refuses_the_address_at_its_cap_and_serves_others() {
    let up = start_upstream().await;
    // A long handshake deadline: the held connections stay open through
    // the test.
    let gw = start_gateway_with_sections(
        &up.url(),
        "max_connections = 4\nmax_connections_per_ip = 2\nhandshake_timeout = \"60s\"\n",
        "",
    )
    .await;
    let _held = hold(2, "127.0.0.1", gw.addr, b"").await;
    // A third from the same address is closed at once (well before the
    // handshake deadline), without an answer.
    let mut third = connect_from("127.0.0.1", gw.addr).await;
    assert_eq!(get_status(&mut third, "/public/x").await, None);
    assert_eq!(metric(&gw, "tilegate_connections_refused_per_ip_total").await, 1.0);
    // Other addresses are served, up to the listener's cap: the refused
    // connection took none of its slots.
    let mut a = connect_from("127.0.0.2", gw.addr).await;
    let mut b = connect_from("127.0.0.3", gw.addr).await;
    assert_eq!(get_status(&mut a, "/public/x").await, Some(200));
    assert_eq!(get_status(&mut b, "/public/x").await, Some(200));
    // Now the listener is full (2 + 2).
    let mut fifth = connect_from("127.0.0.4", gw.addr).await;
    assert_eq!(get_status(&mut fifth, "/public/x").await, None);
    assert_eq!(metric(&gw, "tilegate_connections_refused_total").await, 1.0);
    // A served connection that closes gives its slot back.
    drop(a);
    assert!(served_eventually("127.0.0.5", gw.addr, "/public/x").await);
}

#[tokio::test]
async fn tls_sockets_that_never_finish_the_handshake_are_closed() {
    let up = start_upstream().await;
    let issuer = Issuer::new();
    let (gw, cert) = start_tls_gateway_with(
        &up.url(),
        &issuer,
        "max_connections = 3\nhandshake_timeout = \"2s\"\nheader_read_timeout = \"60s\"\n",
    )
    .await;
    let mut held = hold(2, "127.0.0.1", gw.addr, b"").await;
    // The start of a ClientHello record, never finished.
    held.extend(hold(1, "127.0.0.1", gw.addr, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await);
    for s in held.iter_mut() {
        assert!(closed_by_peer(s, EVENTUALLY).await.is_some(), "closed by the gateway");
    }
    assert_eq!(
        metric_reaches(&gw, "tilegate_connections_timed_out_total{phase=\"handshake\"}", 3.0).await,
        3.0
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    // Retried for a moment: a closed peer's slot is given back just after
    // its socket is closed.
    let url = format!("https://localhost:{}/public/x", gw.addr.port());
    let mut status = None;
    for _ in 0..50 {
        if let Ok(r) = client.get(&url).send().await {
            status = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(reqwest::StatusCode::OK));
}

/// An h2c connection (hyper's client) to the gateway; the task ends when
/// the connection does.
async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

fn get(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(format!("http://x{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_with_goaway_after_the_idle_timeout() {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(&up.url(), "idle_timeout = \"1s\"\nhandshake_timeout = \"60s\"\n", "").await;
    let (mut send, conn) = h2c(gw.addr).await;
    let r = send.send_request(get("/public/a")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();
    // The connection ends by itself, cleanly: the gateway said GOAWAY and
    // closed once the client acknowledged it (hyper's client reports a
    // close without GOAWAY as an error).
    let ended = tokio::time::timeout(EVENTUALLY, conn)
        .await
        .expect("the idle connection is closed by the gateway");
    assert!(ended.unwrap().is_ok(), "closed gracefully");
    assert!(send.send_request(get("/public/b")).await.is_err());
    assert_eq!(
        metric_reaches(&gw, "tilegate_connections_timed_out_total{phase=\"idle\"}", 1.0).await,
        1.0
    );
}

#[tokio::test]
async fn a_response_still_streaming_keeps_its_h2_connection_open() {
    let up = start_upstream().await;
    // Waiting for the upstream is neither idle nor a stalled client.
    let gw = start_gateway_with_sections(
        &up.url(),
        "idle_timeout = \"1s\"\nsend_timeout = \"1s\"\nhandshake_timeout = \"60s\"\n",
        "",
    )
    .await;
    let (mut send, conn) = h2c(gw.addr).await;
    let r = send.send_request(get("/public/s/chunked")).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first-chunk;");
    // Several idle timeouts with no frame: the request is still in flight,
    // so the connection is not idle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!conn.is_finished(), "a connection with a response in flight stays open");
    up.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second-chunk");
    // Other requests still go over the same connection; then, once idle,
    // it is closed.
    let r = send.send_request(get("/public/a")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    let ended = tokio::time::timeout(EVENTUALLY, conn).await;
    assert!(ended.is_ok(), "closed once idle");
}

#[tokio::test]
async fn a_client_that_takes_no_response_data_is_dropped_after_the_send_timeout() {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(
        &up.url(),
        "send_timeout = \"1s\"\nidle_timeout = \"60s\"\nhandshake_timeout = \"60s\"\n",
        "",
    )
    .await;
    // An HTTP/2 client that grants no flow-control window: the response
    // head reaches it, no DATA can, and it keeps answering PINGs.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let r = send.send_request(get("/public/a")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ended = tokio::time::timeout(EVENTUALLY, conn).await;
    assert!(
        ended.is_ok(),
        "the gateway drops a connection whose client takes nothing"
    );
    drop(r);
    assert_eq!(
        metric_reaches(&gw, "tilegate_connections_timed_out_total{phase=\"send\"}", 1.0).await,
        1.0
    );
    assert!(served_eventually("127.0.0.1", gw.addr, "/public/x").await);
}

#[tokio::test]
async fn admin_listener_closes_silent_sockets_and_enforces_its_caps() {
    let up = start_upstream().await;
    // The held sockets outlive the checks (long handshake deadline).
    let gw = start_gateway_with_sections(
        &up.url(),
        "handshake_timeout = \"60s\"\n",
        "max_connections = 3\nmax_connections_per_ip = 2\n",
    )
    .await;
    let admin = gw.admin.unwrap();
    let _held = hold(2, "127.0.0.1", admin, b"").await;
    // The address is at its cap: closed at once, no answer.
    let mut third = connect_from("127.0.0.1", admin).await;
    assert_eq!(get_status(&mut third, "/healthz").await, None);
    // Another address is served (a keep-alive connection, kept open)...
    let mut other = connect_from("127.0.0.2", admin).await;
    assert_eq!(get_status(&mut other, "/healthz").await, Some(200));
    // ... and then the listener is full (2 + 1).
    let mut fourth = connect_from("127.0.0.3", admin).await;
    assert_eq!(get_status(&mut fourth, "/healthz").await, None);
    // The proxy listener is not affected.
    assert_eq!(http().get(gw.url("/public/x")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn admin_listener_closes_idle_connections_at_the_handshake_deadline() {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(&up.url(), "handshake_timeout = \"3s\"\n", "max_connections = 2\n").await;
    let admin = gw.admin.unwrap();
    let mut hello = H2_PREFACE.to_vec();
    hello.extend_from_slice(H2_SETTINGS);
    let mut held = hold(1, "127.0.0.1", admin, b"").await;
    held.extend(hold(1, "127.0.0.1", admin, &hello).await);
    // Full: a scrape gets no answer while they are open.
    let mut s = connect_from("127.0.0.1", admin).await;
    assert_eq!(get_status(&mut s, "/healthz").await, None);
    for s in held.iter_mut() {
        assert!(closed_by_peer(s, EVENTUALLY).await.is_some(), "closed by the gateway");
    }
    assert!(served_eventually("127.0.0.1", admin, "/healthz").await);
}
