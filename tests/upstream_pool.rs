//! The HTTP/1.1 upstream pool (src/proxy/pool.rs), seen from a raw upstream
//! that records every connection it accepts and when each one is closed:
//! reuse, the idle timeout, the idle bound, connections the upstream
//! closes, and responses the client abandons halfway.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Default)]
struct Conns {
    accepted: Arc<AtomicUsize>,
    /// Closed by the gateway (EOF or a failed write seen by the upstream).
    closed_by_peer: Arc<AtomicUsize>,
}

impl Conns {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    fn closed_by_peer(&self) -> usize {
        self.closed_by_peer.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy)]
struct Behaviour {
    /// Wait this long before each answer.
    delay: Duration,
    /// Close the connection this long after each answer (None: keep it).
    close_after: Option<Duration>,
}

/// A keep-alive HTTP/1.1 upstream written against the socket: answers
/// `GET /public/big` with 64 MiB (more than loopback's socket buffers can
/// hold, so a gateway that keeps the connection blocks the write) and anything else with `ok:<n>`, where n
/// counts the requests on that connection.
async fn raw_upstream(b: Behaviour) -> (String, Conns) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Conns::default();
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut n = 0usize;
                loop {
                    let mut chunk = [0u8; 4096];
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => {
                                c.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end);
                    n += 1;
                    tokio::time::sleep(b.delay).await;
                    let resp = if head.starts_with("GET /public/big ") {
                        let mut r = b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n".to_vec();
                        r.resize(r.len() + 64 * 1024 * 1024, b'x');
                        r
                    } else {
                        let body = format!("ok:{n}");
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    };
                    if s.write_all(&resp).await.is_err() {
                        c.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    if let Some(after) = b.close_after {
                        tokio::time::sleep(after).await;
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), conns)
}

async fn gateway(upstream: &str, upstream_extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(upstream, &jwks, "").replacen(
        "request_timeout = \"1s\"\n",
        &format!("request_timeout = \"5s\"\n{upstream_extra}"),
        1,
    );
    tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap()
}

async fn get(gw: &Gateway, path: &str) -> (u16, String) {
    let r = http().get(gw.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls for up to 15 s: generous, since the whole suite shares two cores
/// in CI (5 s was once too short under load).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection_until_it_idles_out() {
    let (url, conns) = raw_upstream(Behaviour {
        delay: Duration::ZERO,
        close_after: None,
    })
    .await;
    let gw = gateway(&url, "idle_timeout = \"1s\"\n").await;
    for i in 1..=20 {
        let (status, body) = get(&gw, "/public/a").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!("ok:{i}"),
            "request {i} went over the same upstream connection"
        );
    }
    assert_eq!(conns.accepted(), 1);
    assert_eq!(conns.closed_by_peer(), 0);
    // Idle past idle_timeout: the gateway closes it by itself.
    eventually("the idle connection closed by the gateway", || {
        conns.closed_by_peer() == 1
    })
    .await;
    let (status, body) = get(&gw, "/public/a").await;
    assert_eq!((status, body.as_str()), (200, "ok:1"));
    assert_eq!(conns.accepted(), 2);
}

#[tokio::test]
async fn idle_connections_are_bounded_by_pool_max_idle() {
    let (url, conns) = raw_upstream(Behaviour {
        delay: Duration::from_millis(300),
        close_after: None,
    })
    .await;
    let gw = gateway(&url, "pool_max_idle = 2\n").await;
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let u = gw.url("/public/a");
            tokio::spawn(async move { http().get(u).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap(), 200);
    }
    assert_eq!(conns.accepted(), 8, "eight requests at once need eight connections");
    eventually("six of eight connections closed", || conns.closed_by_peer() == 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(conns.closed_by_peer(), 6, "two stay idle");
    for _ in 0..4 {
        assert_eq!(get(&gw, "/public/a").await.0, 200);
    }
    assert_eq!(conns.accepted(), 8, "the two idle ones were reused");
}

#[tokio::test]
async fn connections_the_upstream_closes_are_not_reused() {
    // Like a backend with a short keep-alive timeout.
    let (url, conns) = raw_upstream(Behaviour {
        delay: Duration::ZERO,
        close_after: Some(Duration::from_millis(50)),
    })
    .await;
    let gw = gateway(&url, "").await;
    for i in 1..=5 {
        let (status, body) = get(&gw, "/public/a").await;
        assert_eq!((status, body.as_str()), (200, "ok:1"), "request {i}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(conns.accepted(), 5);
}

#[tokio::test]
async fn a_response_the_client_abandons_takes_its_connection_with_it() {
    let (url, conns) = raw_upstream(Behaviour {
        delay: Duration::ZERO,
        close_after: None,
    })
    .await;
    let gw = gateway(&url, "").await;
    assert_eq!(get(&gw, "/public/a").await, (200, "ok:1".to_string()));
    // Read the head and a little of 64 MiB, then hang up.
    let mut r = http().get(gw.url("/public/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(r);
    eventually("the half-read connection closed", || conns.closed_by_peer() == 1).await;
    // The next request gets its own answer, not the rest of the 64 MiB.
    let (status, body) = get(&gw, "/public/a").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok:1");
    assert_eq!(conns.accepted(), 2);
}

#[tokio::test]
async fn an_http2_upstream_is_reached_over_h2c() {
    // start_upstream serves HTTP/1.1 and h2c with prior knowledge.
    let up = start_upstream().await;
    let gw = gateway(&up.url(), "http2 = true\n").await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "/public/h2").await, (200, "upstream:/public/h2:0".to_string()));
    }
    assert_eq!(up.seen.count(), 3);
    assert_eq!(up.seen.last().version, "HTTP/2.0");
}

#[tokio::test]
async fn an_https_upstream_is_reached_through_the_pool() {
    // The backend is another gateway listening with TLS (a self-signed
    // certificate), itself in front of the plain test upstream.
    let up = start_upstream().await;
    let (tls_gw, cert) = start_tls_gateway(&up.url(), &Issuer::new()).await;
    let backend = format!("https://localhost:{}", tls_gw.addr.port());
    let gw = gateway(&backend, &format!("ca_file = \"{}\"\n", cert.display())).await;
    for _ in 0..3 {
        assert_eq!(
            get(&gw, "/public/tls").await,
            (200, "upstream:/public/tls:0".to_string())
        );
    }
    assert_eq!(up.seen.count(), 3);
    assert_eq!(up.seen.last().header("x-forwarded-proto"), Some("https"));
}
