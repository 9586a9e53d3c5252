//! Single flight for cache misses: concurrent first requests with one token
//! (a map loading twenty tiles at once with a new token) wait for one
//! verification instead of making one each.
//!
//! A flight is a `tokio::sync::OnceCell` holding the verdict, in a map keyed
//! by the token's key while anyone waits on it. The first caller to reach
//! the cell verifies; the others wait for its verdict. If that caller is
//! cancelled (its client went away), the next waiter verifies instead, so a
//! flight is never left without an answer. The last caller to leave removes
//! the flight: a later request finds the stored verdict in the cache, or,
//! for a verdict that is not stored (`cache_for == 0`, a reason the
//! negative cache does not keep), verifies again.
//!
//! Only misses touch the map (a short lock around an insert or a removal);
//! a cache hit never does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;

use super::{BuildPrefixHasher, Key, Reason, Verified};

/// What one verification decided, shared by everyone waiting on it.
pub(super) type Verdict = Result<Arc<Verified>, Reason>;

type Cell = Arc<OnceCell<Verdict>>;

/// Verifications in flight, by token key.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<Key, Cell, BuildPrefixHasher>>,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Cell, BuildPrefixHasher>> {
        // Nothing panics while holding it; a poisoned map is still sound.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Join the flight of `key`, starting it if there is none.
    pub(super) fn join(&self, key: Key) -> Seat<'_> {
        let cell = self.lock().entry(key).or_default().clone();
        Seat {
            flights: self,
            key,
            cell: Some(cell),
        }
    }

    /// Flights with someone still waiting on them.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One caller's place in a flight, from joining until dropped.
pub(super) struct Seat<'a> {
    flights: &'a Flights,
    key: Key,
    /// `Some` until dropped.
    cell: Option<Cell>,
}

impl Seat<'_> {
    pub(super) fn cell(&self) -> &OnceCell<Verdict> {
        match &self.cell {
            Some(c) => c,
            None => unreachable!("a seat holds its cell until dropped"),
        }
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        if let Some(cell) = self.cell.take() {
            // Every clone and drop of a cell happens under the lock, so the
            // count is exact: 2 is the map's and this seat's, the last one.
            if Arc::strong_count(&cell) == 2 && map.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&self.key);
            }
            drop(cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    use super::super::keys::{self, KeySet};
    use super::super::revocation::Revocations;
    use super::super::{AuthError, Reason, Verifier};
    use super::*;
    use crate::clock::now_unix;

    /// An external issuer's JWKS endpoint that answers only once the test
    /// releases it, so verifications that need its keys are held in flight.
    struct Jwks {
        url: String,
        requests: Arc<AtomicUsize>,
        release: Arc<Semaphore>,
    }

    async fn jwks_server(body: String) -> Jwks {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", l.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let (r, g) = (requests.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                let (r, g, body) = (r.clone(), g.clone(), body.clone());
                tokio::spawn(async move {
                    let (mut buf, mut got) = ([0u8; 1024], Vec::new());
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = g.acquire().await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(body.as_bytes()).await;
                });
            }
        });
        Jwks { url, requests, release }
    }

    struct Fixture {
        verifier: Arc<Verifier>,
        own: Arc<keys::OwnKey>,
        partner: jsonwebtoken::EncodingKey,
        jwks: Jwks,
    }

    fn own_keys() -> KeySet {
        KeySet::generated(jsonwebtoken::Algorithm::ES256, now_unix()).unwrap()
    }

    async fn fixture() -> Fixture {
        let k = keys::generate(jsonwebtoken::Algorithm::ES256, now_unix()).unwrap();
        let mut jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).unwrap();
        jwk["kid"] = "p1".into();
        let jwks = jwks_server(serde_json::json!({ "keys": [jwk] }).to_string()).await;
        let cfg = crate::config::from_str(&format!(
            "[scopes]\n\"tiles:read\" = \"r\"\n\
             [[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n\
             [[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\naudiences = [\"tilegate\"]\n\
             algorithms = [\"ES256\"]\njwks_url = \"{}\"\nscopes = [\"tiles:read\"]\n",
            jwks.url
        ))
        .unwrap();
        let verifier = Arc::new(Verifier::new(&cfg, own_keys(), None, Arc::new(Revocations::new())));
        let own = verifier.keys().active.clone().unwrap();
        Fixture {
            verifier,
            own,
            partner: jsonwebtoken::EncodingKey::from_ec_der(&k.private_pkcs8_der),
            jwks,
        }
    }

    impl Fixture {
        fn own_token(&self, sub: &str) -> String {
            let key = &self.own;
            let now = now_unix();
            let claims = serde_json::json!({
                "iss": "http://127.0.0.1:8080", "aud": "tilegate", "sub": sub, "exp": now + 600, "iat": now,
                "scope": "tiles:read", "token_type": "access",
            });
            let mut h = jsonwebtoken::Header::new(key.alg);
            h.kid = Some(key.kid.to_string());
            jsonwebtoken::encode(&h, &claims, &key.encoding).unwrap()
        }

        fn partner_token(&self, sub: &str, kid: &str) -> String {
            let now = now_unix();
            let claims = serde_json::json!({
                "iss": "https://partner.example", "aud": "tilegate", "sub": sub, "exp": now + 600, "iat": now,
                "scope": "tiles:read",
            });
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, &claims, &self.partner).unwrap()
        }

        fn spawn_verify(&self, token: &str) -> tokio::task::JoinHandle<Result<Arc<Verified>, AuthError>> {
            let (v, t) = (self.verifier.clone(), token.to_string());
            tokio::spawn(async move { v.verify(&t).await })
        }
    }

    /// Let every spawned task run until it waits.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn concurrent_first_requests_with_one_token_verify_it_once() {
        let f = fixture().await;
        let token = f.partner_token("alice", "p1");
        // Twenty tiles at once with a new token: its issuer's keys are not
        // loaded yet, so the first verification waits for the JWKS.
        let tasks: Vec<_> = (0..20).map(|_| f.spawn_verify(&token)).collect();
        settle().await;
        assert_eq!(f.jwks.requests.load(Ordering::SeqCst), 1);
        assert_eq!(f.verifier.flights.len(), 1, "one flight for the twenty");
        assert_eq!(f.verifier.verifications(), 1);

        // Distinct tokens are not held behind it: one of the gateway's own
        // verifies meanwhile, and another partner token gets its own flight.
        let own = f.own_token("bob");
        let bob = f.verifier.verify(&own).await.unwrap();
        assert_eq!(bob.sub(), "bob");
        let carol = f.spawn_verify(&f.partner_token("carol", "p1"));
        settle().await;
        assert_eq!(f.verifier.flights.len(), 2, "carol's token flies on its own");
        assert_eq!(f.verifier.verifications(), 3);

        f.jwks.release.add_permits(100);
        let mut verdicts = Vec::new();
        for t in tasks {
            verdicts.push(t.await.unwrap().unwrap());
        }
        assert!(
            verdicts.iter().all(|v| Arc::ptr_eq(v, &verdicts[0])),
            "one verdict shared"
        );
        assert_eq!(verdicts[0].sub(), "partner|alice");
        assert_eq!(carol.await.unwrap().unwrap().sub(), "partner|carol");
        assert_eq!(f.verifier.verifications(), 3, "alice once, bob once, carol once");
        assert_eq!(f.verifier.flights.len(), 0, "no flight outlives its callers");
        assert_eq!(f.jwks.requests.load(Ordering::SeqCst), 1);

        // Later requests are cache hits.
        f.verifier.verify(&token).await.unwrap();
        assert_eq!(f.verifier.verifications(), 3);
    }

    #[tokio::test]
    async fn distinct_tokens_verify_in_parallel() {
        let f = fixture().await;
        let tokens: Vec<String> = (0..8).map(|i| f.partner_token(&format!("u{i}"), "p1")).collect();
        let tasks: Vec<_> = tokens.iter().map(|t| f.spawn_verify(t)).collect();
        settle().await;
        // All eight are verifying at once (waiting for the issuer's keys),
        // none behind another's flight.
        assert_eq!(f.verifier.flights.len(), 8);
        assert_eq!(f.verifier.verifications(), 8);
        f.jwks.release.add_permits(100);
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap().sub(), format!("partner|u{i}"));
        }
        assert_eq!(f.verifier.verifications(), 8);
        assert_eq!(f.verifier.flights.len(), 0);
    }

    #[tokio::test]
    async fn a_shared_refusal_does_not_poison_later_attempts() {
        let f = fixture().await;
        // Signed by a key the issuer does not publish: unknown key, a
        // reason the negative cache does not keep.
        let token = f.partner_token("mallory", "p2");
        let tasks: Vec<_> = (0..5).map(|_| f.spawn_verify(&token)).collect();
        settle().await;
        f.jwks.release.add_permits(100);
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), AuthError::Invalid(Reason::UnknownKey));
        }
        assert_eq!(f.verifier.verifications(), 1, "the five shared one verification");
        assert_eq!(f.verifier.flights.len(), 0);
        // Not remembered: the next request verifies again.
        assert_eq!(
            f.verifier.verify(&token).await.unwrap_err(),
            AuthError::Invalid(Reason::UnknownKey)
        );
        assert_eq!(f.verifier.verifications(), 2);

        // A malformed token is remembered by the negative cache, as before.
        let bad = "e30.e30.sig";
        let tasks: Vec<_> = (0..5).map(|_| f.spawn_verify(bad)).collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), AuthError::Invalid(Reason::Malformed));
        }
        assert_eq!(
            f.verifier.verify(bad).await.unwrap_err(),
            AuthError::Invalid(Reason::Malformed)
        );
        assert_eq!(f.verifier.verifications(), 3);
    }

    #[tokio::test]
    async fn a_cancelled_first_caller_hands_the_verification_on() {
        let f = fixture().await;
        let token = f.partner_token("dave", "p1");
        let first = f.spawn_verify(&token);
        settle().await;
        let second = f.spawn_verify(&token);
        settle().await;
        assert_eq!(f.verifier.verifications(), 1, "the second waits");
        // The first caller's client goes away mid-verification.
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        settle().await;
        f.jwks.release.add_permits(100);
        // The second verifies instead and gets an answer (its own: the
        // issuer's keys were asked for a moment ago, so not again yet).
        let verdict = second.await.unwrap();
        assert_eq!(verdict.unwrap_err(), AuthError::Invalid(Reason::UnknownKey));
        assert_eq!(f.verifier.verifications(), 2);
        assert_eq!(f.verifier.flights.len(), 0, "no flight left behind");
    }
}
