//! Faults: an upstream that dies mid-response, clients that send headers
//! slowly, more connections than the configured maximum.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway_with(extra_server: &str, upstream: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(upstream, &jwks, "").replacen("[server]\n", &format!("[server]\n{extra_server}"), 1);
    tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upstream_dying_mid_response_cuts_that_response_only() {
    // A raw upstream: announces 100,000 bytes, sends 10, closes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    let gw = gateway_with("", &format!("http://{addr}")).await;
    let r = http().get(gw.url("/public/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "the client sees a cut response, not a short 'complete' one"
    );
    // The gateway goes on serving.
    for _ in 0..3 {
        let r = http().get(gw.url("/nothing-here")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn slow_headers_are_dropped_after_the_header_read_timeout() {
    let up = start_upstream().await;
    let gw = gateway_with("header_read_timeout = \"1s\"\n", &up.url()).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("connection closed by the gateway");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(up.seen.count(), 0);
    // Others are still served.
    assert_eq!(http().get(gw.url("/public/x")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn connections_over_the_maximum_are_refused_and_existing_ones_served() {
    let up = start_upstream().await;
    let gw = gateway_with("max_connections = 2\n", &up.url()).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // A third connection is closed at once, without a response.
    let mut third = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let _ = third.write_all(b"GET /public/b HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(3), third.read_to_end(&mut buf))
        .await
        .expect("refused promptly");
    assert!(r.is_err() || buf.is_empty(), "no response on a refused connection");
    // The held connections keep being served.
    for s in held.iter_mut() {
        s.write_all(b"GET /public/c HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let m = http()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("tilegate_connections_refused_total 1"), "{m}");
}
