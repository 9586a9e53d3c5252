//! JWT attack catalogue (RFC 8725 and the usual lists) against the running
//! gateway: every case is 401, never reaches the upstream, and changes
//! nothing stored.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use serde_json::json;

fn b64json(v: &serde_json::Value) -> String {
    B64.encode(v.to_string())
}

/// A token with this header and payload, signed properly by `issuer`'s key
/// over exactly these bytes (so only the content is hostile).
fn signed_raw(issuer: &Issuer, header: &serde_json::Value, payload: &str) -> String {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let msg = format!("{}.{}", b64json(header), payload);
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &issuer.pkcs8).unwrap();
    let sig = kp.sign(&SystemRandom::new(), msg.as_bytes()).unwrap();
    format!("{msg}.{}", B64.encode(sig.as_ref()))
}

#[tokio::test]
async fn the_catalogue_is_refused_without_touching_the_upstream() {
    let issuer = Issuer::new();
    let attacker = Issuer::new();
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let toml = config(&up.url(), &jwks, "");
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    let url = gw.url("/tiles/1/2/3.pbf");

    let es = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
    let good = Issuer::claims("tiles:read", 300);
    let p = |v: &serde_json::Value| b64json(v);
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let valid = issuer.sign(&good);
    let sig_of_valid = valid.rsplit('.').next().unwrap().to_owned();

    let mut cases: Vec<(&str, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        cases.push((
            "alg none in any casing",
            format!("{}.{}.", b64json(&json!({"alg": alg, "typ": "JWT"})), p(&good)),
        ));
        cases.push((
            "alg none with the old signature",
            format!("{}.{}.{sig_of_valid}", b64json(&json!({"alg": alg})), p(&good)),
        ));
    }
    for alg in [jsonwebtoken::Algorithm::HS256, jsonwebtoken::Algorithm::HS384] {
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = Some(KID.into());
        let t = jsonwebtoken::encode(
            &h,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(&issuer.public_bytes()),
        )
        .unwrap();
        cases.push(("HS* signed with the public key", t));
    }
    cases.push((
        "ECDSA r = s = 0",
        format!("{}.{}.{}", b64json(&es), p(&good), B64.encode([0u8; 64])),
    ));
    cases.push((
        "ECDSA signature of wrong length",
        format!("{}.{}.{}", b64json(&es), p(&good), B64.encode([1u8; 63])),
    ));
    cases.push((
        "DER-encoded ECDSA signature",
        format!(
            "{}.{}.{}",
            b64json(&es),
            p(&good),
            B64.encode([0x30, 0x06, 2, 1, 1, 2, 1, 1])
        ),
    ));
    cases.push((
        "tampered header, old signature",
        format!(
            "{}.{}.{sig_of_valid}",
            b64json(&json!({"alg": "ES256", "kid": KID, "x": 1})),
            p(&good)
        ),
    ));
    cases.push((
        "tampered payload, old signature",
        format!(
            "{}.{}.{sig_of_valid}",
            b64json(&es),
            p(&with("scope", json!("tiles:read datasets:stream")))
        ),
    ));
    cases.push((
        "unknown kid",
        signed_raw(&issuer, &json!({"alg": "ES256", "kid": "other"}), &p(&good)),
    ));
    cases.push((
        "kid with a path",
        signed_raw(
            &attacker,
            &json!({"alg": "ES256", "kid": "../../../../dev/null"}),
            &p(&good),
        ),
    ));
    cases.push((
        "kid with SQL",
        signed_raw(&attacker, &json!({"alg": "ES256", "kid": "x' OR '1'='1"}), &p(&good)),
    ));
    // Keys named by the token itself are never trusted.
    let attacker_jwk: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&attacker.jwks()).unwrap()["keys"][0].clone();
    cases.push((
        "embedded jwk header",
        signed_raw(&attacker, &json!({"alg": "ES256", "jwk": attacker_jwk}), &p(&good)),
    ));
    cases.push((
        "jku header",
        signed_raw(
            &attacker,
            &json!({"alg": "ES256", "kid": KID, "jku": format!("{}/jwks", up.url())}),
            &p(&good),
        ),
    ));
    cases.push((
        "x5u header",
        signed_raw(
            &attacker,
            &json!({"alg": "ES256", "kid": KID, "x5u": format!("{}/cert", up.url())}),
            &p(&good),
        ),
    ));
    cases.push((
        "x5c header",
        signed_raw(
            &attacker,
            &json!({"alg": "ES256", "kid": KID, "x5c": ["MIIB"]}),
            &p(&good),
        ),
    ));
    cases.push((
        "crit with an unknown extension",
        signed_raw(
            &issuer,
            &json!({"alg": "ES256", "kid": KID, "crit": ["exp2"], "exp2": 1}),
            &p(&good),
        ),
    ));
    // Claims of the wrong type or shape, validly signed.
    cases.push(("iss not a string", issuer.sign(&with("iss", json!(5)))));
    cases.push(("iss as an array", issuer.sign(&with("iss", json!([ISS, "x"])))));
    cases.push((
        "exp as a string",
        issuer.sign(&with("exp", json!((now() + 300).to_string()))),
    ));
    cases.push((
        "exp as a float",
        issuer.sign(&with("exp", json!((now() + 300) as f64 + 0.5))),
    ));
    cases.push(("exp huge", issuer.sign(&with("exp", json!(1e30)))));
    cases.push(("nbf as a string", issuer.sign(&with("nbf", json!("0")))));
    cases.push(("no exp", {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("exp");
        issuer.sign(&c)
    }));
    cases.push((
        "expired one second past the 30 s leeway",
        issuer.sign(&with("exp", json!(now() - 31))),
    ));
    cases.push(("other audience", issuer.sign(&with("aud", json!("someone-else")))));
    cases.push(("other issuer", issuer.sign(&with("iss", json!("https://other.test")))));
    let dup = format!(
        r#"{{"iss":"{ISS}","iss":"https://evil.test","aud":"{AUD}","sub":"x","exp":{},"scope":"tiles:read"}}"#,
        now() + 300
    );
    cases.push(("duplicate iss", signed_raw(&issuer, &es, &B64.encode(dup))));
    cases.push(("oversized token", issuer.sign(&with("pad", json!("x".repeat(9000))))));
    cases.push(("bad base64", format!("{}.@@@.{sig_of_valid}", b64json(&es))));
    cases.push(("non-JSON payload", signed_raw(&issuer, &es, &B64.encode("not json"))));
    cases.push((
        "non-JSON header",
        format!("{}.{}.{sig_of_valid}", B64.encode("nope"), p(&good)),
    ));
    cases.push(("two segments", format!("{}.{}", b64json(&es), p(&good))));
    cases.push(("four segments", format!("{valid}.x")));

    for (name, tok) in &cases {
        let r = http().get(&url).bearer_auth(tok).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{name}"
        );
    }
    // The duplicate-claim token may decode either way; none of them got through.
    assert_eq!(up.seen.count(), 0, "no attack reached the upstream");
    // The genuine token still works (nothing was poisoned along the way).
    assert_eq!(http().get(&url).bearer_auth(&valid).send().await.unwrap().status(), 200);
    assert!(!gw.logs().contains(&valid[..40]));
}

#[tokio::test]
async fn a_rotated_out_key_stops_verifying_after_its_grace() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(&up.url(), &jwks, "")
        .replacen("[tokens]\n", "[tokens]\nrotation_grace = \"1s\"\n", 1)
        .replacen("[store]\n", "[store]\nrevocation_resync = \"200ms\"\n", 1);
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    let minted = gw.cli(&["token", "mint", "--scope", "tiles:read", "--ttl", "10m"]);
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let old = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let url = gw.url("/tiles/1/2/3.pbf");
    assert_eq!(http().get(&url).bearer_auth(&old).send().await.unwrap().status(), 200);
    let r = http()
        .post(gw.admin_url("/admin/v1/keys/rotate"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Within the grace the old key's token still verifies.
    assert_eq!(http().get(&url).bearer_auth(&old).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let jwks: serde_json::Value = http()
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        1,
        "the retired key left the JWKS after its grace"
    );
    // After the grace its tokens are refused, cached or not.
    let r = http().get(&url).bearer_auth(&old).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Another local user reads the SQLite store (password and key hashes,
/// encrypted secrets): the gateway creates the store's directory 0700 and
/// the database (hence its `-wal` and `-shm`) 0600 even under umask 000, and
/// tightens files an earlier run left readable (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(&up.url(), &jwks, "").replacen(
        "url = \"sqlite://{DIR}/tilegate.db\"\nkek_file = \"{DIR}/kek\"",
        "url = \"sqlite://{DIR}/data/store/tilegate.db\"\nkek_file = \"{DIR}/secrets/kek\"",
        1,
    );
    assert!(toml.contains("/data/store/tilegate.db"));
    let root = dir.path().to_owned();
    let (data, store, db) = (
        root.join("data"),
        root.join("data/store"),
        root.join("data/store/tilegate.db"),
    );
    let (wal, shm) = (
        root.join("data/store/tilegate.db-wal"),
        root.join("data/store/tilegate.db-shm"),
    );

    let t = toml.clone();
    let mut gw = tokio::task::spawn_blocking(move || start_gateway_with_umask(dir, &t, 0o000))
        .await
        .unwrap();
    // A write, so the WAL holds something.
    admin_post(&gw, "/admin/v1/orgs", json!({"name": "acme"})).await;
    for d in [&data, &store, &root.join("secrets")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in [&db, &wal, &shm, &root.join("secrets/kek")] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // Files left group/other-readable (an older version, a copy made by
    // hand) are tightened at the next start, and the log says so.
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw); // SIGKILL: -wal and -shm stay
    for f in [&db, &wal, &shm] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let gw = tokio::task::spawn_blocking(move || start_gateway_with_umask(dir, &toml, 0o000))
        .await
        .unwrap();
    admin_post(&gw, "/admin/v1/orgs", json!({"name": "other"})).await;
    for f in [&db, &wal, &shm] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert!(
        gw.logs()
            .contains("the store file was readable by other users; tightened"),
        "{}",
        gw.logs()
    );
}

/// An on-path attacker serves their own JWKS to a gateway that fetches an
/// issuer's keys over plain http, and forges that issuer's tokens: such a
/// `jwks_url` is a config error unless the issuer opts in with
/// `allow_insecure_http` (a loopback URL, a local sidecar, needs no opt-in).
#[test]
fn a_plain_http_jwks_url_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let check = |issuer: &str| {
        let toml = config("http://127.0.0.1:9", &jwks, issuer).replace("{DIR}", dir.path().to_str().unwrap());
        let path = dir.path().join("check.toml");
        std::fs::write(&path, toml).unwrap();
        cli(&path, dir.path(), &["check-config"], None)
    };
    let issuer = |url: &str, extra: &str| {
        format!(
            "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.test\"\naudiences = [\"{AUD}\"]\nalgorithms = [\"ES256\"]\n\
             jwks_url = \"{url}\"\n{extra}"
        )
    };
    for url in [
        "http://idp.example.com/jwks.json",
        "http://10.0.0.7:8080/jwks.json",
        "HTTP://idp.example.com/jwks.json",
        "http://localhost.idp.example.com/jwks.json",
    ] {
        let out = check(&issuer(url, ""));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url} accepted");
        assert!(
            err.contains("jwks_url") && err.contains("allow_insecure_http"),
            "{url}: {err}"
        );
        let out = check(&issuer(url, "allow_insecure_http = true\n"));
        assert!(
            out.status.success(),
            "{url} with the opt-in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for url in [
        "https://idp.example.com/jwks.json",
        "http://127.0.0.1:8081/jwks.json",
        "http://localhost:8081/jwks.json",
        "http://[::1]:8081/jwks.json",
    ] {
        let out = check(&issuer(url, ""));
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
