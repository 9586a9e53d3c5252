//! Limits keyed on the right thing (audit M2 and M3), through
//! the real binary: the client address behind a trusted load balancer
//! (`X-Forwarded-For`, or a PROXY protocol header), IPv6 clients by /64,
//! failures counted per credential as well as per address, and
//! `rate_limit_per_subject` keyed on the credential a token derives from.
//!
//! The "load balancer" is a client on 127.0.0.1 (the gateway trusts
//! `127.0.0.1/32`) that sets `X-Forwarded-For` as a real one does; other
//! loopback addresses (127.0.0.2, ...) are untrusted peers.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};

const TRUST_LB: &str = "trusted_proxies = [\"127.0.0.1/32\"]\n";

struct Env {
    up: Upstream,
    gw: Gateway,
}

async fn env(server_extra: &str, extra: &str) -> Env {
    let up = start_upstream().await;
    let gw = start_gateway_with(&up.url(), &Issuer::new(), server_extra, extra).await;
    Env { up, gw }
}

/// `POST /v1/auth/token` with `key` from `c`, as relayed for `xff`.
async fn exchange_via(c: &reqwest::Client, gw: &Gateway, xff: Option<&str>, key: &str) -> u16 {
    let mut r = c.post(gw.url("/v1/auth/token")).bearer_auth(key);
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    r.send().await.unwrap().status().as_u16()
}

/// The password grant from `c`, as relayed for `xff`.
async fn password_via(c: &reqwest::Client, gw: &Gateway, xff: Option<&str>, user: &str, pw: &str) -> u16 {
    let mut r =
        c.post(gw.url("/oauth/token"))
            .form(&[("grant_type", "password"), ("username", user), ("password", pw)]);
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    r.send().await.unwrap().status().as_u16()
}

/// The client-credentials grant (Basic) from the LB for `xff`.
async fn client_grant_via(gw: &Gateway, xff: &str, id: &str, secret: &str) -> u16 {
    http()
        .post(gw.url("/oauth/token"))
        .header("x-forwarded-for", xff)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A user of `org` (admin API).
async fn user(gw: &Gateway, org: &Value, name: &str, pw: &str) {
    admin_post(
        gw,
        "/admin/v1/users",
        json!({"org": org["id"], "username": name, "password": pw}),
    )
    .await;
}

/// Send failing attempts (`attempt(i)`) until one gets 429, 45 at most;
/// the statuses.
async fn fail_until_429<F, Fut>(mut attempt: F) -> Vec<u16>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut statuses = Vec::new();
    for i in 0..45 {
        let s = attempt(i).await;
        statuses.push(s);
        if s == 429 {
            break;
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_load_balancer_one_clients_failures_throttle_only_that_client() {
    // The audit's reproduction, with the default quota (30 a minute).
    let e = env(TRUST_LB, "").await;
    let gw = &e.gw;
    let (org, sa) = admin_org_and_account(gw).await;
    admin_user_ana(gw, &org).await;
    let key = admin_api_key(gw, &sa, "tiles:read").await;
    let lb = http();
    let a = Some("198.51.100.1");
    // (The quota refills one failure every 2 s: on a slow machine a few
    // more than 30 may pass before the 429, never fewer.)
    let statuses = fail_until_429(|i| {
        let lb = &lb;
        async move { exchange_via(lb, gw, a, &format!("tgk_wrong{i}")).await }
    })
    .await;
    assert_eq!(statuses[..30], [401; 30], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(exchange_via(&lb, gw, a, &key).await, 429, "A itself is blocked");
    // Everybody else behind the same balancer is not.
    assert_eq!(exchange_via(&lb, gw, Some("198.51.100.2"), &key).await, 200);
    assert_eq!(
        password_via(&lb, gw, Some("198.51.100.3"), "ana", "correct horse").await,
        200
    );
    // A client's own entries stand left of what the balancer appended:
    // A cannot pass for someone else, nor shed its block.
    assert_eq!(
        exchange_via(&lb, gw, Some("198.51.100.9, 198.51.100.1"), &key).await,
        429
    );
    assert_eq!(
        exchange_via(&lb, gw, Some("198.51.100.1, 198.51.100.9"), &key).await,
        200
    );

    // An untrusted peer's X-Forwarded-For is ignored: naming B's address
    // neither gets it a fresh counter nor blocks B.
    let direct = http_from("127.0.0.2");
    let statuses = fail_until_429(|i| {
        let fake = format!("198.51.100.2, 203.0.113.{i}");
        let direct = &direct;
        async move { exchange_via(direct, gw, Some(&fake), &format!("tgk_wrong{i}")).await }
    })
    .await;
    assert_eq!(statuses[..30], [401; 30], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(exchange_via(&direct, gw, Some("203.0.113.99"), &key).await, 429);
    assert_eq!(exchange_via(&lb, gw, Some("198.51.100.2"), &key).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_every_client_behind_the_balancer_shares_its_address() {
    // The documented default: nobody is trusted, the TCP peer is the key,
    // so one client's failures block everyone behind the same balancer.
    let e = env("", "[limits]\nauth_failures_per_minute = 3\n").await;
    let gw = &e.gw;
    let (_, sa) = admin_org_and_account(gw).await;
    let key = admin_api_key(gw, &sa, "tiles:read").await;
    let lb = http();
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(exchange_via(&lb, gw, Some("198.51.100.1"), &format!("tgk_wrong{i}")).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(exchange_via(&lb, gw, Some("198.51.100.2"), &key).await, 429);
    // Another peer is another client.
    assert_eq!(exchange_via(&http_from("127.0.0.2"), gw, None, &key).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_behind_the_balancer_are_keyed_by_their_slash_64() {
    let e = env(TRUST_LB, "[limits]\nauth_failures_per_minute = 3\n").await;
    let gw = &e.gw;
    let (_, sa) = admin_org_and_account(gw).await;
    let key = admin_api_key(gw, &sa, "tiles:read").await;
    let lb = http();
    // A new address of the same /64 for every attempt.
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let ip = format!("2001:db8:1:2::{i:x}");
        statuses.push(exchange_via(&lb, gw, Some(&ip), &format!("tgk_wrong{i}")).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(
        exchange_via(&lb, gw, Some("[2001:db8:1:2:ffff:ffff:ffff:ffff]:443"), &key).await,
        429,
        "the whole /64 is blocked"
    );
    assert_eq!(exchange_via(&lb, gw, Some("2001:db8:1:3::1"), &key).await, 200);
    // IPv4 addresses are keyed one by one.
    assert_eq!(exchange_via(&lb, gw, Some("198.51.100.7"), &key).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_per_credential_as_well_as_per_address() {
    let e = env(TRUST_LB, "[limits]\nauth_failures_per_credential = 5\n").await;
    let gw = &e.gw;
    let (org, _) = admin_org_and_account(gw).await;
    admin_user_ana(gw, &org).await;
    user(gw, &org, "bob", "bob's long password").await;
    let lb = http();
    // Ana's usual address: she logged in from it before.
    let home = Some("198.51.100.50");
    assert_eq!(password_via(&lb, gw, home, "ana", "correct horse").await, 200);

    // A distributed guess at ana's password, one attempt per address: no
    // address reaches its own quota (30), the username reaches its (5).
    let mut statuses = Vec::new();
    for i in 1..=7 {
        let ip = format!("203.0.113.{i}");
        statuses.push(password_via(&lb, gw, Some(&ip), "ana", &format!("guess {i}")).await);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429, 429], "{statuses:?}");
    // From a new address, even the right password is refused while the
    // username is blocked (it is not checked: no argon2 run, no oracle).
    assert_eq!(
        password_via(&lb, gw, Some("203.0.113.100"), "ana", "correct horse").await,
        429
    );
    // From where ana proved it, her password still works.
    assert_eq!(password_via(&lb, gw, home, "ana", "correct horse").await, 200);
    // Other credentials are not locked out by failures on ana: bob's
    // password works from a new address, and his failures are his own.
    assert_eq!(
        password_via(&lb, gw, Some("203.0.113.101"), "bob", "bob's long password").await,
        200
    );
    assert_eq!(password_via(&lb, gw, Some("203.0.113.102"), "bob", "wrong").await, 400);
    // A username that does not exist is counted alike (no enumeration).
    let mut statuses = Vec::new();
    for i in 1..=6 {
        let ip = format!("203.0.114.{i}");
        statuses.push(password_via(&lb, gw, Some(&ip), "nobody", "x").await);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429]);

    // OAuth client ids are counted the same way.
    let login: Value = http()
        .post(gw.url("/oauth/token"))
        .header("x-forwarded-for", "198.51.100.50")
        .form(&[
            ("grant_type", "password"),
            ("username", "ana"),
            ("password", "correct horse"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = login["access_token"].as_str().unwrap();
    let r = http()
        .post(gw.url("/v1/clients"))
        .bearer_auth(login)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    let (id, secret) = (c["client_id"].as_str().unwrap(), c["client_secret"].as_str().unwrap());
    let service = "198.51.100.60";
    assert_eq!(client_grant_via(gw, service, id, secret).await, 200);
    let mut statuses = Vec::new();
    for i in 1..=6 {
        let ip = format!("203.0.115.{i}");
        statuses.push(client_grant_via(gw, &ip, id, "tgs_wrong").await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    assert_eq!(client_grant_via(gw, "203.0.115.100", id, secret).await, 429);
    assert_eq!(client_grant_via(gw, service, id, secret).await, 200);
}

/// A PROXY protocol v2 header (PROXY command, TCP) for `src`, with `tlvs`.
fn proxy_v2(src: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.push(0x21);
    let mut addrs = Vec::new();
    match src {
        SocketAddr::V4(a) => {
            b.push(0x11);
            addrs.extend_from_slice(&a.ip().octets());
            addrs.extend_from_slice(&[127, 0, 0, 1]);
        }
        SocketAddr::V6(a) => {
            b.push(0x21);
            addrs.extend_from_slice(&a.ip().octets());
            addrs.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        }
    }
    addrs.extend_from_slice(&src.port().to_be_bytes());
    addrs.extend_from_slice(&8080u16.to_be_bytes());
    b.extend_from_slice(&((addrs.len() + tlvs.len()) as u16).to_be_bytes());
    b.extend_from_slice(&addrs);
    b.extend_from_slice(tlvs);
    b
}

fn get_request(path: &str, extra_headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Connection: close\r\n\r\n")
}

fn exchange_request(key: &str) -> String {
    format!(
        "POST /v1/auth/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// `header` then `request` from `from`: the response's status, if any.
async fn via_proxy(gw: &Gateway, from: &str, header: &[u8], request: &str) -> Option<u16> {
    let bytes = [header, request.as_bytes()].concat();
    raw_response_status(&raw_request_from(gw.addr, from, &bytes).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_protocol_header_from_a_trusted_peer_names_the_client() {
    let e = env(
        &format!("{TRUST_LB}proxy_protocol = true\nhandshake_timeout = \"2s\"\n"),
        "[limits]\nauth_failures_per_minute = 3\n",
    )
    .await;
    let gw = &e.gw;
    let (_, sa) = admin_org_and_account(gw).await;
    let key = admin_api_key(gw, &sa, "tiles:read").await;
    let a: SocketAddr = "203.0.113.7:5555".parse().unwrap();
    let b: SocketAddr = "203.0.113.8:5555".parse().unwrap();

    // The upstream sees the header's address; the client's own
    // X-Forwarded-For (it is no trusted proxy) is replaced.
    let req = get_request("/public/v2", "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n");
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(a, &[]), &req).await, Some(200));
    let seen = e.up.seen.last();
    assert_eq!(seen.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    // The client spoke TLS to the balancer (PP2_TYPE_SSL, client flag).
    let ssl = [0x20, 0, 5, 0x01, 0, 0, 0, 0];
    let req = get_request("/public/tls", "");
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(b, &ssl), &req).await, Some(200));
    assert_eq!(e.up.seen.last().header("x-forwarded-proto"), Some("https"));
    assert_eq!(e.up.seen.last().header("x-real-ip"), Some("203.0.113.8"));
    // Version 1 (text) too, and IPv6.
    let v1 = b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 8080\r\n";
    assert_eq!(
        via_proxy(gw, "127.0.0.1", v1, &get_request("/public/v1", "")).await,
        Some(200)
    );
    assert_eq!(e.up.seen.last().header("x-real-ip"), Some("198.51.100.9"));
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let req = get_request("/public/v6", "");
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(v6, &[]), &req).await, Some(200));
    assert_eq!(e.up.seen.last().header("x-real-ip"), Some("2001:db8::7"));

    // The throttle keys on the header's address.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let s = via_proxy(
            gw,
            "127.0.0.1",
            &proxy_v2(a, &[]),
            &exchange_request(&format!("tgk_wrong{i}")),
        )
        .await;
        statuses.push(s.unwrap());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let good = exchange_request(&key);
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(a, &[]), &good).await, Some(429));
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(b, &[]), &good).await, Some(200));

    // From a trusted peer the header is required: a plain request, a
    // malformed header, or silence is closed without an answer (silence at
    // the handshake deadline), and nothing reaches the upstream.
    let before = e.up.seen.count();
    for bad in [
        &b""[..],
        b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x02\x01\x02",
    ] {
        let out = raw_request_from(
            gw.addr,
            "127.0.0.1",
            &[bad, get_request("/public/no", "").as_bytes()].concat(),
        )
        .await;
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    }
    assert!(raw_request_from(gw.addr, "127.0.0.1", b"").await.is_empty());
    assert_eq!(e.up.seen.count(), before);

    // An untrusted peer's header is not read: it is taken as the start of
    // the request, which is malformed (400), and nothing is forwarded.
    let spoof = proxy_v2("198.51.100.1:1".parse().unwrap(), &[]);
    let status = via_proxy(gw, "127.0.0.2", &spoof, &get_request("/public/spoof", "")).await;
    assert!(matches!(status, Some(400) | None), "{status:?}");
    let status = via_proxy(gw, "127.0.0.2", v1, &get_request("/public/spoof", "")).await;
    assert!(matches!(status, Some(400) | None), "{status:?}");
    assert_eq!(e.up.seen.count(), before);
    // Its plain requests are served, under its own address.
    assert_eq!(
        via_proxy(gw, "127.0.0.2", b"", &get_request("/public/direct", "")).await,
        Some(200)
    );
    assert_eq!(e.up.seen.last().header("x-real-ip"), Some("127.0.0.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_connection_cap_counts_the_proxy_headers_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env(
        &format!("{TRUST_LB}proxy_protocol = true\nmax_connections_per_ip = 1\n"),
        "",
    )
    .await;
    let gw = &e.gw;
    let a: SocketAddr = "203.0.113.7:5555".parse().unwrap();
    // One connection of A, served once and kept open (keep-alive), so it
    // surely holds A's slot.
    let mut held = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    held.write_all(&proxy_v2(a, &[])).await.unwrap();
    held.write_all(b"GET /public/held HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("upstream:/public/held") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), held.read(&mut buf))
            .await
            .expect("the held connection is answered")
            .unwrap();
        assert!(n > 0, "the held connection was closed");
        got.extend_from_slice(&buf[..n]);
    }
    // A second connection of A is over A's cap: closed after its header,
    // unanswered.
    let req = get_request("/public/x", "");
    assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(a, &[]), &req).await, None);
    // Other clients of the same balancer are served: its own address,
    // with more connections open than the cap, is not capped.
    for last in 8..=10 {
        let b = SocketAddr::new(std::net::Ipv4Addr::new(203, 0, 113, last).into(), 5555);
        assert_eq!(via_proxy(gw, "127.0.0.1", &proxy_v2(b, &[]), &req).await, Some(200));
    }
    assert!(metric(gw, "tilegate_connections_refused_per_ip_total").await >= 1.0);
    // Once A's connection is gone, A is served again.
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        if via_proxy(gw, "127.0.0.1", &proxy_v2(a, &[]), &req).await == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "A's slot was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_read_from_trusted_proxies_only() {
    let e = env(TRUST_LB, "").await;
    let gw = &e.gw;
    let r = http()
        .get(gw.url("/public/lb"))
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(seen.header("x-real-ip"), Some("198.51.100.1"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("6.6.6.6, 198.51.100.1, 127.0.0.1"),
        "the chain as received, with the balancer appended"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    // A value other than one http/https is not believed.
    http()
        .get(gw.url("/public/lb2"))
        .header("x-forwarded-proto", "gopher")
        .send()
        .await
        .unwrap();
    let seen = e.up.seen.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    // An untrusted peer's forwarding headers are replaced.
    let r = http_from("127.0.0.2")
        .get(gw.url("/public/direct"))
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.2"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.2"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_subject_is_shared_by_every_token_of_one_credential() {
    let e = env(
        "",
        "[[routes]]\nprefix = \"/limited/\"\nupstream = \"tiles\"\nscopes = [\"tiles:read\"]\nrate_limit_per_subject = 1\n",
    )
    .await;
    let gw = &e.gw;
    let (_, sa) = admin_org_and_account(gw).await;
    let key1 = admin_api_key(gw, &sa, "tiles:read").await;
    let key2 = admin_api_key(gw, &sa, "tiles:read").await;
    // Five fresh tokens from one key (each with its own `sub`).
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(exchange_token(gw, &key1).await);
    }
    let other = exchange_token(gw, &key2).await;
    // Sent together, so that they fall within one second.
    let send = |t: String| async move {
        http()
            .get(gw.url("/limited/x"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let mut statuses = futures_util::future::join_all(tokens.into_iter().chain([other]).map(send)).await;
    let other_status = statuses.pop().unwrap();
    statuses.sort();
    assert_eq!(statuses, [200, 429, 429, 429, 429], "one quota for the key");
    assert_eq!(other_status, 200, "another key has its own quota");
}

#[test]
fn check_config_names_every_bad_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let base =
        "[scopes]\n\"tiles:read\" = \"r\"\n[[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:9\"]\n";
    let good = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"2001:db8::/32\"]\nproxy_protocol = true\n{base}"
    );
    std::fs::write(&path, &good).unwrap();
    let ok = cli(&path, dir.path(), &["check-config"], None);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let bad = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.1/8\", \"0.0.0.0/0\", \"lb.internal\", \"::/0\", \"10.0.0.0/40\"]\n{base}"
    );
    std::fs::write(&path, &bad).unwrap();
    let out = cli(&path, dir.path(), &["check-config"], None);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "server.trusted_proxies: \"10.0.0.1/8\": host bits are set (the network is 10.0.0.0/8)",
        "server.trusted_proxies: \"0.0.0.0/0\": a /0 network trusts every address",
        "server.trusted_proxies: \"lb.internal\": not an IP address or CIDR network",
        "server.trusted_proxies: \"::/0\": a /0 network",
        "server.trusted_proxies: \"10.0.0.0/40\": the prefix length must be 1 to 32",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // PROXY headers without anyone to trust them from.
    std::fs::write(&path, format!("[server]\nproxy_protocol = true\n{base}")).unwrap();
    let out = cli(&path, dir.path(), &["check-config"], None);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.proxy_protocol: PROXY headers are read only from trusted_proxies"),
        "{err}"
    );
}
