//! External token issuers: their keys (JWKS URL refreshed in the background
//! and on an unknown `kid`, rate-limited; JWKS or PEM files; an HMAC secret
//! from the environment), algorithm allow-lists and validation rules, and
//! what the operator lets each grant (scopes, a fixed organization, a
//! subject namespace, a maximum lifetime, a cache bound).
//!
//! Every issuer has an epoch: cached verdicts remember the epoch they were
//! made in, and one that no longer matches is verified again. The epoch
//! moves when a JWKS refresh drops or changes a key, and when a reload
//! replaces the issuer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::Reason;
use crate::clock::now_unix;
use crate::config::{ExternalIssuer, IssuerKeySource};

/// Fetches of one JWKS URL on an unknown `kid` happen at most this often.
const UNKNOWN_KID_REFETCH_SECS: i64 = 10;
const JWKS_MAX_BYTES: usize = 256 * 1024;

/// One verification key and a fingerprint of its JWK (to see a key
/// replaced under the same `kid`).
#[derive(Clone)]
struct IssuerKey {
    key: DecodingKey,
    fingerprint: [u8; 32],
}

type KeyMap = HashMap<String, IssuerKey>;

pub struct IssuerKeys {
    pub issuer: Arc<str>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    pub(super) leeway: u64,
    pub source: IssuerKeySource,
    pub refresh: Duration,
    keys: ArcSwap<KeyMap>,
    last_fetch: AtomicI64,
    /// One fetch at a time; a lookup that misses waits for one in flight.
    fetching: tokio::sync::Mutex<()>,
    /// The configured name, the id routes know it by, and the name as the
    /// issuer header's value.
    pub name: Arc<str>,
    pub id: u64,
    pub(super) header: HeaderValue,
    /// The organization header's value for every token of this issuer.
    pub(super) org: Option<HeaderValue>,
    /// Tilegate scopes a token may carry when it names them.
    allow: Box<[Box<str>]>,
    /// The issuer's scope values mapped to tilegate scopes.
    map: BTreeMap<Box<str>, Box<[Box<str>]>>,
    pub(super) max_lifetime: Option<i64>,
    pub(super) cache_ttl: Duration,
    epoch: AtomicU64,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
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
                    name: c.name.as_str().into(),
                    id: c.id,
                    // Validation allows only plain characters in both.
                    header: HeaderValue::from_str(&c.name).unwrap_or(HeaderValue::from_static("invalid")),
                    org: c.org.as_deref().and_then(|o| HeaderValue::from_str(o).ok()),
                    allow: c.scopes.iter().map(|s| s.as_str().into()).collect(),
                    map: c
                        .scope_map
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.iter().map(|s| s.as_str().into()).collect()))
                        .collect(),
                    max_lifetime: c.max_lifetime.map(|d| d.as_secs().min(i64::MAX as u64) as i64),
                    cache_ttl: c.cache_ttl,
                    epoch: AtomicU64::new(0),
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
fn load_static(c: &ExternalIssuer) -> Result<KeyMap, String> {
    let mut m = HashMap::new();
    let plain = |key| IssuerKey {
        key,
        fingerprint: [0; 32],
    };
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
            m.insert(kid.clone().unwrap_or_default(), plain(key));
        }
        IssuerKeySource::HmacEnv(var) => {
            let secret = std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
            if secret.len() < 32 {
                return Err(format!("{var}: an HMAC secret needs at least 32 bytes"));
            }
            m.insert(String::new(), plain(DecodingKey::from_secret(secret.as_bytes())));
        }
    }
    Ok(m)
}

fn parse_jwks(bytes: &[u8]) -> Result<KeyMap, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut m = HashMap::new();
    for k in &set.keys {
        // A key we cannot use is skipped, not fatal: JWKS documents often
        // mix key types.
        if let Ok(d) = DecodingKey::from_jwk(k) {
            let json = serde_json::to_vec(k).unwrap_or_default();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
            let mut fingerprint = [0u8; 32];
            fingerprint.copy_from_slice(digest.as_ref());
            m.insert(
                k.common.key_id.clone().unwrap_or_default(),
                IssuerKey { key: d, fingerprint },
            );
        }
    }
    Ok(m)
}

impl IssuerKeys {
    /// The current epoch (see the module docs). Read before the keys, so a
    /// verdict is never newer than its epoch says.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Make every cached verdict of this issuer stale (a reload replaced
    /// it).
    pub fn retire(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The tilegate scopes a token's scope values (`scope`, `scp`) grant:
    /// those in the allow-list and those mapped, each once, sorted.
    pub fn grant<'a>(&self, values: impl Iterator<Item = &'a str>) -> String {
        let mut out: Vec<&str> = Vec::new();
        for v in values {
            if let Some(a) = self.allow.iter().find(|a| ***a == *v) {
                if !out.contains(&&**a) {
                    out.push(a);
                }
            }
            if let Some(mapped) = self.map.get(v) {
                for s in mapped.iter() {
                    if !out.contains(&&**s) {
                        out.push(s);
                    }
                }
            }
        }
        out.sort_unstable();
        out.join(" ")
    }

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
        let k = match kid {
            Some(k) => keys.get(k),
            None if keys.len() == 1 => keys.values().next(),
            None => keys.get(""),
        };
        k.map(|k| k.key.clone())
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
                let new = Arc::new(keys);
                let old = self.keys.swap(new.clone());
                // A key that left the set, or changed under its kid: the
                // verdicts it signed must go. Which verdict came from which
                // key is not recorded, so all of this issuer's go (rare:
                // once per key retirement at the issuer).
                let dropped = old
                    .iter()
                    .any(|(kid, k)| new.get(kid).is_none_or(|n| n.fingerprint != k.fingerprint));
                if dropped {
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(issuer = %self.name, "a key left the JWKS; cached verdicts of this issuer are dropped");
                }
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
    let client = crate::net::client::plain_client();
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
/// issuer list is read afresh each round, and a reload starts a round at
/// once, so issuers added by a reload are fetched promptly.
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
            _ = verifier.issuers_changed.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(extra: &str) -> Arc<IssuerKeys> {
        let cfg = crate::config::from_str(&format!(
            "[scopes]\n\"tiles:read\" = \"r\"\n\"tiles:premium\" = \"p\"\n\"datasets:stream\" = \"s\"\n\
             [[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\naudiences = [\"tilegate\"]\n\
             algorithms = [\"ES256\"]\njwks_file = \"/nonexistent\"\n{extra}"
        ))
        .unwrap();
        ExternalIssuers::from_config(&cfg.issuers, Duration::from_secs(30)).list[0].clone()
    }

    #[test]
    fn an_issuer_grants_only_what_it_is_allowed_or_mapped() {
        let none = issuer("");
        assert_eq!(
            none.grant(["tiles:read", "tiles:premium"].into_iter()),
            "",
            "default: nothing"
        );
        let i = issuer(
            "scopes = [\"tiles:read\"]\nscope_map = { \"partner.stream\" = [\"datasets:stream\", \"tiles:read\"] }\n",
        );
        assert_eq!(
            i.grant(["tiles:premium", "tiles:read", "other"].into_iter()),
            "tiles:read"
        );
        assert_eq!(
            i.grant(["partner.stream", "tiles:read", "partner.stream"].into_iter()),
            "datasets:stream tiles:read"
        );
        // A mapped value is not itself a scope, and a mapping's targets are
        // not claim values.
        assert_eq!(i.grant(["datasets:stream"].into_iter()), "");
        assert_eq!(i.grant(std::iter::empty()), "");
    }

    #[test]
    fn retiring_moves_the_epoch() {
        let i = issuer("");
        let e = i.epoch();
        i.retire();
        assert_ne!(i.epoch(), e);
    }
}
