//! Auth decision benchmarks: the cache-hit path (what every tile request
//! pays), a cache miss per algorithm (signature verification), concurrent
//! first requests with one new token (one verification for all of them),
//! and token signing per algorithm (what the exchange endpoints pay).
//!
//! cargo bench --bench auth

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Method;
use tilegate::auth::keys::KeySet;
use tilegate::auth::revocation::Revocations;
use tilegate::auth::{check_rule, Verifier};
use tilegate::clock::now_unix;
use tilegate::routing::Policy;

fn keyset(alg: jsonwebtoken::Algorithm) -> KeySet {
    KeySet::generated(alg, now_unix()).unwrap()
}

/// A second key set with the same signing key (to sign tokens for a
/// verifier that owns the first).
fn keyset_clone(set: &KeySet) -> KeySet {
    let k = set.active.as_ref().unwrap();
    let mut by_kid = std::collections::HashMap::new();
    by_kid.insert(k.kid.clone(), k.clone());
    KeySet {
        active: Some(k.clone()),
        by_kid,
    }
}

fn token(set: &KeySet, n: u32) -> String {
    let key = set.active.as_ref().unwrap();
    let now = now_unix();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080", "aud": "tilegate", "sub": format!("tok_short_{n}"), "exp": now + 3600,
        "iat": now, "nbf": now, "jti": format!("jti-{n}"), "org_id": "org_1", "scope": "tiles:read datasets:stream",
        "token_type": "api_token", "uid": "sa_1", "cid": "key_1",
    });
    let mut h = jsonwebtoken::Header::new(key.alg);
    h.kid = Some(key.kid.to_string());
    jsonwebtoken::encode(&h, &claims, &key.encoding).unwrap()
}

fn config() -> tilegate::config::Config {
    tilegate::config::from_str(
        "[scopes]\n\"tiles:read\" = \"r\"\n\"datasets:stream\" = \"s\"\n[[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cfg = config();
    let policy = Policy::Token {
        scopes: vec![Box::from("tiles:read")].into_boxed_slice(),
        read_only: false,
        issuers: tilegate::routing::IssuerSet::self_only(),
    };

    // Cache hit: SHA-256 of the token, moka lookup, revocation check, scope rule.
    let set = keyset(jsonwebtoken::Algorithm::ES256);
    let tok = token(&set, 1);
    let v = Verifier::new(&cfg, set, None, Arc::new(Revocations::new()));
    rt.block_on(v.verify(&tok)).unwrap();
    c.bench_function("auth decision, cache hit", |b| {
        b.iter(|| {
            let ok = v.cached(std::hint::black_box(&tok)).unwrap().unwrap();
            check_rule(&policy, &Method::GET, &ok).unwrap();
        })
    });
    // The same with a non-empty revocation set (1,000 revoked ids).
    let revs = Arc::new(Revocations::new());
    revs.replace((0..1000).map(|i| (format!("revoked-{i}"), None)), now_unix());
    let set = keyset(jsonwebtoken::Algorithm::ES256);
    let tok2 = token(&set, 2);
    let v2 = Verifier::new(&cfg, set, None, revs);
    rt.block_on(v2.verify(&tok2)).unwrap();
    c.bench_function("auth decision, cache hit, 1k revocations", |b| {
        b.iter(|| {
            let ok = v2.cached(std::hint::black_box(&tok2)).unwrap().unwrap();
            check_rule(&policy, &Method::GET, &ok).unwrap();
        })
    });

    // Single flight: 20 concurrent first requests with one new token (a map
    // loading 20 tiles at once), spawned on two worker threads. They share
    // one verification; without single flight most of them verify.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let set = keyset(jsonwebtoken::Algorithm::ES256);
    let signer = keyset_clone(&set);
    let v = Arc::new(Verifier::new(&cfg, set, None, Arc::new(Revocations::new())));
    let (mut n, mut rounds) = (1000, 0u64);
    let before = v.verifications();
    c.bench_function("20 concurrent first requests, one new token, ES256", |b| {
        b.iter_batched(
            || {
                n += 1;
                token(&signer, n)
            },
            |tok| {
                rounds += 1;
                let tok: Arc<str> = tok.into();
                mt.block_on(async {
                    let tasks: Vec<_> = (0..20)
                        .map(|_| {
                            let (v, tok) = (v.clone(), tok.clone());
                            tokio::spawn(async move { v.verify(&tok).await.map(|_| ()) })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    if rounds > 0 {
        eprintln!(
            "20 concurrent first requests, one new token: {:.2} verifications per round ({rounds} rounds)",
            (v.verifications() - before) as f64 / rounds as f64
        );
    }

    for (name, alg) in [
        ("ES256", jsonwebtoken::Algorithm::ES256),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
        ("RS256", jsonwebtoken::Algorithm::RS256),
    ] {
        let set = keyset(alg);
        let tok = token(&set, 3);
        let v = Verifier::new(&cfg, set, None, Arc::new(Revocations::new()));
        c.bench_function(&format!("auth decision, cache miss, {name}"), |b| {
            b.iter(|| rt.block_on(v.verify_uncached(std::hint::black_box(&tok))).unwrap())
        });
        let set = keyset(alg);
        let mut n = 0;
        c.bench_function(&format!("sign token, {name}"), |b| {
            b.iter(|| {
                n += 1;
                token(&set, n)
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
