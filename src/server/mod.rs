//! The proxy listener: the accept loop with connection limits, PROXY
//! headers, TLS and graceful drain ([`serve`]); the request path itself is
//! composed in `stack.rs`, and every refusal becomes its response in
//! `rescue.rs`. Process wiring (which listeners start, reload, shutdown)
//! is `app`'s.

pub mod conn;
pub mod proxy_protocol;
pub mod rescue;
pub mod stack;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use conn::ConnLimits;

use crate::net::trusted::TrustedProxies;
use crate::state::Gateway;

/// Per-connection facts the request path needs.
#[derive(Clone)]
pub struct ConnInfo {
    /// The client spoke TLS: to this listener, or to the proxy in front
    /// (a PROXY v2 header's SSL flag).
    pub tls: bool,
    /// The connection's client: the address its PROXY header carries, or
    /// else the TCP peer.
    pub client: IpAddr,
    /// `client` as a header value (computed once per connection).
    pub client_ip: HeaderValue,
    /// Set when `client` is a trusted proxy: then each request's
    /// `X-Forwarded-For` and `X-Forwarded-Proto` say who and how the
    /// client is (`net::trusted`). `None` on every other connection, so
    /// their requests cost one branch.
    pub trusted: Option<Arc<TrustedProxies>>,
}

impl ConnInfo {
    /// A connection's facts; `trusted` is the `[server] trusted_proxies`
    /// of the config it was accepted under.
    pub fn new(tls: bool, client: IpAddr, trusted: &Arc<TrustedProxies>) -> ConnInfo {
        let client = client.to_canonical();
        ConnInfo {
            tls,
            client,
            client_ip: HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
            trusted: trusted.contains(client).then(|| trusted.clone()),
        }
    }
}

/// The proxy listener's connection caps (`server.max_connections` and
/// `max_connections_per_ip`), one for the process: per-core workers share
/// them.
pub fn limits(gw: &Gateway) -> Arc<ConnLimits> {
    let cfg = gw.runtime.load().config.clone();
    Arc::new(ConnLimits::new(
        cfg.server.max_connections,
        cfg.server.max_connections_per_ip,
    ))
}

/// Serve the proxy listener until `shutdown`, then drain the connections
/// (up to `server.shutdown_grace`). `limits` are the process's caps
/// ([`limits`]); the drain waits for every connection they count, so a
/// per-core worker (`worker`, its index) keeps its runtime running until
/// the others have drained too. Connections run on the current runtime.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    limits: Arc<ConnLimits>,
    worker: Option<usize>,
) {
    let cfg = gw.runtime.load().config.clone();
    let accepted_here = worker.map(crate::metrics::worker_connections);
    let timeouts = conn::Timeouts::from_config(&cfg.server);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    conn::configure(&mut builder, &cfg.server);
    builder.http2().enable_connect_protocol();
    if !cfg.server.h2c && tls.is_none() {
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    match worker {
        None => tracing::info!(addr = %cfg.server.listen, tls = tls.is_some(), "tilegate listening"),
        Some(w) => {
            tracing::info!(addr = %cfg.server.listen, tls = tls.is_some(), worker = w, "tilegate worker listening")
        }
    }

    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::time::Instant::now();
        if let Some(c) = &accepted_here {
            c.increment(1);
        }
        // Trusted proxies and PROXY headers as configured now: a reload
        // applies to the connections accepted after it.
        let (trusted, proxy_protocol) = {
            let rt = gw.runtime.load();
            (
                rt.config.server.trusted_proxies.clone(),
                rt.config.server.proxy_protocol,
            )
        };
        let from_proxy = !trusted.is_empty() && trusted.contains(remote.ip());
        let admitted = if from_proxy {
            limits.admit_proxy()
        } else {
            limits.admit(remote.ip())
        };
        let mut admission = match admitted {
            Ok(a) => a,
            Err(why) => {
                refused(why, remote.ip());
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let read_proxy_header = from_proxy && proxy_protocol;
        let addr_cap = read_proxy_header.then(|| limits.addr_cap());
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            crate::metrics::connection_opened();
            let deadline = accepted + timeouts.handshake;
            // A trusted proxy's PROXY header names the client (and says
            // whether it spoke TLS to the proxy); read within the
            // handshake deadline, and nothing but a valid one is served.
            let (client, proxied_tls) = match addr_cap {
                None => (remote.ip(), false),
                Some(cap) => match tokio::time::timeout_at(deadline, proxy_protocol::read(&mut stream)).await {
                    Ok(Ok(h)) => {
                        let client = h.source.map_or(remote.ip(), |s| s.ip());
                        // The client's connections count against its own
                        // address, unless it is a trusted proxy as well.
                        if !trusted.contains(client) {
                            match cap.take(client) {
                                Ok(slot) => admission.key(slot),
                                Err(why) => {
                                    refused(why, client);
                                    crate::metrics::connection_closed();
                                    return;
                                }
                            }
                        }
                        (client, h.tls)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(client.ip = %remote.ip(), error = %e, "PROXY header refused");
                        crate::metrics::connection_closed();
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client.ip = %remote.ip(), "PROXY header timed out");
                        crate::metrics::connection_timed_out("handshake");
                        crate::metrics::connection_closed();
                        return;
                    }
                },
            };
            let _admission = admission;
            let info = ConnInfo::new(tls.is_some() || proxied_tls, client, &trusted);
            let activity = Arc::new(conn::Activity::default());
            let svc = conn::Tracked::new(TowerToHyperService::new(stack::build(gw, info)), activity.clone());
            let closed = match tls {
                None => conn::drive(&builder, stream, svc, &activity, timeouts, deadline, shutdown).await,
                // The handshake deadline covers the TLS handshake too.
                Some(acc) => match tokio::time::timeout_at(deadline, acc.accept(stream)).await {
                    Ok(Ok(s)) => conn::drive(&builder, s, svc, &activity, timeouts, deadline, shutdown).await,
                    Ok(Err(_)) => {
                        tracing::debug!(client.ip = %client, "TLS handshake failed");
                        conn::Closed::Normally
                    }
                    Err(_) => {
                        tracing::debug!(client.ip = %client, "TLS handshake timed out");
                        conn::Closed::Handshake
                    }
                },
            };
            match closed {
                conn::Closed::Handshake => crate::metrics::connection_timed_out("handshake"),
                conn::Closed::Idle => crate::metrics::connection_timed_out("idle"),
                conn::Closed::Send => crate::metrics::connection_timed_out("send"),
                conn::Closed::Normally | conn::Closed::Shutdown => {}
            }
            crate::metrics::connection_closed();
        });
    }
    drop(listener);
    let grace = cfg.server.shutdown_grace;
    tokio::select! {
        _ = limits.drained() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
}

/// Count and log a connection refused by a cap.
fn refused(why: conn::Refused, ip: IpAddr) {
    match why {
        conn::Refused::Full => crate::metrics::connection_refused(),
        conn::Refused::PerAddress => crate::metrics::connection_refused_per_ip(),
    }
    tracing::debug!(client.ip = %ip, reason = ?why, "connection refused");
}

/// Pause after a failed `accept` (EMFILE and friends) before the next one.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
