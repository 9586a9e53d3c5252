//! The cache-hit authorization path allocates nothing: a token already in
//! the verification cache is looked up (keyed hash, moka, revocation set)
//! and checked against a route's rule without touching the allocator.
//! Counted with a global allocator that counts, in this test binary only.
//! (Its cost in time is in `benches/auth.rs`; this is the property.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::Method;
use tilegate::auth::keys::KeySet;
use tilegate::auth::revocation::Revocations;
use tilegate::auth::{check_rule, Verifier};
use tilegate::clock::now_unix;
use tilegate::routing::Policy;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn keyset() -> KeySet {
    KeySet::generated(jsonwebtoken::Algorithm::ES256, now_unix()).unwrap()
}

fn token(set: &KeySet) -> String {
    let key = set.active.as_ref().unwrap();
    let now = now_unix();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080", "aud": "tilegate", "sub": "tok_short_1", "exp": now + 3600,
        "iat": now, "nbf": now, "jti": "jti-1", "org_id": "org_1", "scope": "tiles:read datasets:stream",
        "token_type": "api_token", "uid": "sa_1", "cid": "key_1",
    });
    let mut h = jsonwebtoken::Header::new(key.alg);
    h.kid = Some(key.kid.to_string());
    jsonwebtoken::encode(&h, &claims, &key.encoding).unwrap()
}

/// Allocations made by `f`, run `n` times (this thread's and any other's:
/// the test runs alone in its binary).
fn allocations(n: u32, mut f: impl FnMut()) -> u64 {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..n {
        f();
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn a_cache_hit_and_the_route_rule_allocate_nothing() {
    let cfg = tilegate::config::from_str(
        "[scopes]\n\"tiles:read\" = \"r\"\n\"datasets:stream\" = \"s\"\n[[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let policy = Policy::Token {
        scopes: vec![Box::from("tiles:read")].into_boxed_slice(),
        read_only: false,
        issuers: tilegate::routing::IssuerSet::self_only(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let revs = Arc::new(Revocations::new());
    // A non-empty revocation set: the hit path looks the token up in it.
    revs.replace((0..100).map(|i| (format!("revoked-{i}"), None)), now_unix());
    let set = keyset();
    let tok = token(&set);
    let v = Verifier::new(&cfg, set, None, revs);
    rt.block_on(v.verify(&tok)).unwrap();
    // Warm up (first lookups may size thread-locals of the cache).
    for _ in 0..1000 {
        let ok = v.cached(&tok).unwrap().unwrap();
        check_rule(&policy, &Method::GET, &ok).unwrap();
    }

    let hit = allocations(10_000, || {
        let ok = v.cached(std::hint::black_box(&tok)).unwrap().unwrap();
        check_rule(&policy, &Method::GET, &ok).unwrap();
    });
    assert_eq!(hit, 0, "allocations in 10,000 cache hits");

    // The counter counts: a miss (a token never seen) allocates.
    let miss = allocations(1, || {
        assert!(v.cached("not.a-token.at-all").unwrap_or(None).is_none());
        let _ = rt.block_on(v.verify("not.a-token.at-all"));
    });
    assert!(miss > 0, "the counting allocator saw the miss's allocations");
}
