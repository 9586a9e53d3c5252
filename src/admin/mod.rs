//! The admin listener, separate from the proxy listener:
//!
//! - `GET /healthz`: 200 while the process serves (liveness).
//! - `GET /readyz`: 200 when the store answers and a signing key is
//!   loaded, else 503 (readiness).
//! - `GET /metrics`: Prometheus text format.
//! - `/admin/v1/…`: the admin API (see `api.rs`), behind its own bearer
//!   credential from `admin.token_env` or `admin.token_file`, compared in
//!   constant time.

mod api;
mod error;

use crate::metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::Resp;
use crate::server::conn::{self, ConnLimits};
use crate::state::Gateway;

pub struct Admin {
    gw: Arc<Gateway>,
    credential: Option<Vec<u8>>,
}

impl Admin {
    pub fn new(gw: Arc<Gateway>, cfg: &Config) -> Result<Arc<Admin>, String> {
        let credential = match std::env::var(&cfg.admin.token_env) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().as_bytes().to_vec()),
            _ => match &cfg.admin.token_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| format!("admin.token_file {}: {e}", p.display()))?
                        .trim()
                        .as_bytes()
                        .to_vec(),
                ),
                None => None,
            },
        };
        if credential.as_ref().is_some_and(|c| c.len() < 16) {
            return Err("the admin credential must be at least 16 characters".into());
        }
        if credential.is_none() {
            tracing::warn!(env = %cfg.admin.token_env, "no admin credential set: the admin API is disabled");
        }
        Ok(Arc::new(Admin { gw, credential }))
    }
}

/// Serve the admin listener with the proxy listener's connection timeouts
/// (`[server]`: handshake, header read, idle, HTTP/2 keep-alive) and its
/// own caps (`admin.max_connections`, `admin.max_connections_per_ip`).
pub async fn serve(admin: Arc<Admin>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let (limits, timeouts, builder) = {
        let cfg = admin.gw.runtime.load().config.clone();
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        conn::configure(&mut builder, &cfg.server);
        (
            ConnLimits::new(cfg.admin.max_connections, cfg.admin.max_connections_per_ip),
            conn::Timeouts::from_config(&cfg.server),
            Arc::new(builder),
        )
    };
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(crate::server::ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::time::Instant::now();
        let admission = match limits.admit(remote.ip()) {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(client.ip = %remote.ip(), reason = ?why, "admin connection refused");
                continue;
            }
        };
        let admin = admin.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _admission = admission;
            let activity = Arc::new(conn::Activity::default());
            let svc = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                // Boxed: `Tracked` wants an `Unpin` future (the admin
                // listener is not a hot path).
                Box::pin(async move { Ok::<_, std::convert::Infallible>(handle(&admin, req).await) })
                    as Pin<Box<dyn Future<Output = Result<Resp, std::convert::Infallible>> + Send>>
            });
            let svc = conn::Tracked::new(svc, activity.clone());
            let deadline = accepted + timeouts.handshake;
            conn::drive(&builder, stream, svc, &activity, timeouts, deadline, shutdown).await;
        });
    }
}

async fn handle(admin: &Admin, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => crate::http::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        "/readyz" => {
            let store_ok = admin.gw.store.ping().await.is_ok();
            let keys_ok = admin.gw.verifier.keys().active.is_some();
            let ready = admin.gw.is_ready() && store_ok && keys_ok;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            crate::http::json(
                status,
                &serde_json::json!({ "ready": ready, "store": store_ok, "signing_key": keys_ok }),
            )
        }
        "/metrics" => {
            metrics::set_scrape_gauges(admin.gw.verifier.cache_entries(), admin.gw.verifier.revocations.len());
            let mut r = http::Response::new(crate::http::Body::from(metrics::handle().render()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        p if p.starts_with("/admin/") => {
            if let Err(r) = check_credential(admin, &req) {
                return r;
            }
            api::handle(&admin.gw, req).await
        }
        _ => crate::http::error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    }
}

#[allow(clippy::result_large_err)] // the refusal is the response itself
fn check_credential(admin: &Admin, req: &Request<Incoming>) -> Result<(), Resp> {
    use subtle::ConstantTimeEq;
    let unauthorized = || {
        let mut r = crate::http::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin credential is missing or wrong",
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"tilegate-admin\""),
        );
        r
    };
    let Some(expected) = &admin.credential else {
        return Err(crate::http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "admin_disabled",
            "no admin credential is configured",
        ));
    };
    let given = crate::auth::extract::bearer(req.headers())
        .map_err(|_| unauthorized())?
        .ok_or_else(unauthorized)?;
    if given.as_bytes().ct_eq(expected).into() {
        Ok(())
    } else {
        Err(unauthorized())
    }
}
