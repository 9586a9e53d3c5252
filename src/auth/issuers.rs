//! External token issuers: their keys (JWKS URL refreshed in the background
//! and on an unknown `kid`, rate-limited; JWKS or PEM files; an HMAC secret
//! from the environment), algorithm allow-lists and validation rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{now_unix, Reason};
use crate::config::{ExternalIssuer, IssuerKeySource};

/// Fetches of one JWKS URL on an unknown `kid` happen at most this often.
const UNKNOWN_KID_REFETCH_SECS: i64 = 10;
const JWKS_MAX_BYTES: usize = 256 * 1024;

pub struct IssuerKeys {
    pub issuer: Arc<str>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    pub source: IssuerKeySource,
    pub refresh: Duration,
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    last_fetch: AtomicI64,
    /// One fetch at a time; a lookup that misses waits for one in flight.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub struct ExternalIssuers {
    pub list: Vec<Arc<IssuerKeys>>,
}

impl ExternalIssuers {
    pub fn from_config(cfg: &[ExternalIssuer], leeway: Duration) -> ExternalIssuers {
        let list = cfg
            .iter()
            .map(|c| {
                let keys = match load_static(c) {
                    Ok(k) => k,
                    Err(e) => {
                        tracing::error!(issuer = %c.issuer, error = %e, "issuer keys unreadable");
                        HashMap::new()
                    }
                };
                Arc::new(IssuerKeys {
                    issuer: c.issuer.as_str().into(),
                    audiences: c.audiences.clone(),
                    algorithms: c.algorithms.clone(),
                    leeway: leeway.as_secs(),
                    source: c.source.clone(),
                    refresh: c.jwks_refresh,
                    keys: ArcSwap::from_pointee(keys),
                    last_fetch: AtomicI64::new(0),
                    fetching: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        ExternalIssuers { list }
    }

    pub fn find(&self, iss: &str) -> Option<&Arc<IssuerKeys>> {
        self.list.iter().find(|i| &*i.issuer == iss)
    }
}

/// Keys that need no network: files and env secrets.
pub fn load_static(c: &ExternalIssuer) -> Result<HashMap<String, DecodingKey>, String> {
    let mut m = HashMap::new();
    match &c.source {
        IssuerKeySource::JwksUrl(_) => {}
        IssuerKeySource::JwksFile(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            m = parse_jwks(text.as_bytes())?;
        }
        IssuerKeySource::Pem { path, kid } => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let alg = c.algorithms.first().copied().unwrap_or(Algorithm::ES256);
            let key = match alg {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| format!("{}: {e}", path.display()))?;
            m.insert(kid.clone().unwrap_or_default(), key);
        }
        IssuerKeySource::HmacEnv(var) => {
            let secret = std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
            if secret.len() < 32 {
                return Err(format!("{var}: an HMAC secret needs at least 32 bytes"));
            }
            m.insert(String::new(), DecodingKey::from_secret(secret.as_bytes()));
        }
    }
    Ok(m)
}

fn parse_jwks(bytes: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut m = HashMap::new();
    for k in &set.keys {
        // A key we cannot use is skipped, not fatal: JWKS documents often
        // mix key types.
        if let Ok(d) = DecodingKey::from_jwk(k) {
            m.insert(k.common.key_id.clone().unwrap_or_default(), d);
        }
    }
    Ok(m)
}

impl IssuerKeys {
    /// The key and validation for a token of this issuer.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<(DecodingKey, Validation), Reason> {
        if !self.algorithms.contains(&alg) {
            return Err(Reason::Algorithm);
        }
        let key = match self.lookup(kid) {
            Some(k) => k,
            None if matches!(self.source, IssuerKeySource::JwksUrl(_)) => {
                // Wait for a fetch in flight (the start-up one, say), then
                // fetch again only if the last one is old enough.
                let _guard = self.fetching.lock().await;
                match self.lookup(kid) {
                    Some(k) => k,
                    None if now_unix() - self.last_fetch.load(Ordering::Relaxed) >= UNKNOWN_KID_REFETCH_SECS => {
                        let _ = self.fetch_locked().await;
                        self.lookup(kid).ok_or(Reason::UnknownKey)?
                    }
                    None => return Err(Reason::UnknownKey),
                }
            }
            None => return Err(Reason::UnknownKey),
        };
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway;
        v.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        v.set_issuer(&[&*self.issuer]);
        v.set_audience(&self.audiences);
        v.validate_nbf = true;
        Ok((key, v))
    }

    fn lookup(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys.load();
        match kid {
            Some(k) => keys.get(k).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => keys.get("").cloned(),
        }
    }

    /// Fetch the JWKS URL now; on failure keep the last good keys.
    pub async fn refresh_now(&self) -> Result<(), String> {
        let _guard = self.fetching.lock().await;
        self.fetch_locked().await
    }

    /// The fetch itself; the caller holds `fetching`.
    async fn fetch_locked(&self) -> Result<(), String> {
        let IssuerKeySource::JwksUrl(uri) = &self.source else {
            return Ok(());
        };
        self.last_fetch.store(now_unix(), Ordering::Relaxed);
        let r = fetch(uri.clone()).await.and_then(|b| parse_jwks(&b));
        match r {
            Ok(keys) if !keys.is_empty() => {
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Ok(_) => Err("JWKS has no usable key".into()),
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS refresh failed; keeping the last good keys");
                Err(e)
            }
        }
    }
}

async fn fetch(uri: http::Uri) -> Result<Bytes, String> {
    let client = crate::proxy::plain_client();
    let req = http::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), JWKS_MAX_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes())
}

/// Background refresh of every JWKS URL issuer, until shutdown. The
/// issuer list is read afresh each round, so issuers added by a reload are
/// refreshed too.
pub async fn refresh_loop(verifier: Arc<super::Verifier>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let issuers = Arc::clone(&verifier.external());
        let mut every = Duration::from_secs(60);
        for i in issuers
            .list
            .iter()
            .filter(|i| matches!(i.source, IssuerKeySource::JwksUrl(_)))
        {
            let _ = i.refresh_now().await;
            every = every.min(i.refresh);
        }
        drop(issuers);
        tokio::select! {
            _ = tokio::time::sleep(every.max(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => return,
        }
    }
}
