//! Tile grants through the real binary: API keys with a grant ceiling
//! (admin API and CLI), narrowing on exchange, the check on routes that
//! name tile coordinates (each dimension at its edges, each out-of-grant
//! answer), and the cache headers of authenticated responses.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

/// A tile upstream: `Cache-Control: no-store` for paths with `nostore`,
/// else `public, max-age=600, s-maxage=3600`; counts what it serves.
async fn tile_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    s.fetch_add(1, Ordering::SeqCst);
                    let path = req.uri().path().to_owned();
                    let cc = if path.contains("nostore") {
                        "no-store"
                    } else {
                        "public, max-age=600, s-maxage=3600"
                    };
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("cache-control", cc)
                                .body(Full::new(Bytes::from(format!("tile:{path}"))))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

const ROUTES: &str = r#"
[[routes]]
name = "g"
path = "/g/{layer}/{z}/{x}/{y}.pbf"
methods = ["GET"]
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", layer = "layer" }
[[routes]]
name = "gf"
path = "/gf/{layer}/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", layer = "layer" }
out_of_grant = "forbidden"
[[routes]]
name = "gn"
path = "/gn/{layer}/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", layer = "layer" }
out_of_grant = "no_content"
[[routes]]
name = "ge"
path = "/ge/{layer}/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", layer = "layer" }
out_of_grant = "empty"
[[routes]]
name = "tms"
path = "/tms/{z}/{x}/{y}.png"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", scheme = "tms" }
[[routes]]
name = "shared"
path = "/shared/{layer}/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y", layer = "layer" }
shared_cache = true
[[routes]]
name = "bound"
path = "/bound/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
bind_origin = true
[[routes]]
name = "bound-lax"
path = "/bound-lax/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
bind_origin = true
missing_origin = "allow"
[[routes]]
name = "rest"
path = "/rest/{z}/{x}/{y}/{*rest}"
upstream = "tiles"
scopes = ["tiles:read"]
tiles = { z = "z", x = "x", y = "y" }
[[routes]]
name = "plain"
path = "/plain/{z}/{x}/{y}.pbf"
upstream = "tiles"
scopes = ["tiles:read"]
"#;

struct Fx {
    gw: Gateway,
    sa: Value,
    seen: Arc<AtomicUsize>,
}

async fn setup() -> Fx {
    let (up, seen) = tile_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(&up, &jwks, ROUTES);
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    let (_, sa) = admin_org_and_account(&gw).await;
    Fx { gw, sa, seen }
}

/// An API key of the fixture's service account with `tiles` (admin API).
/// An API key of the fixture's service account allowing only `origins`.
async fn key_for_origins(fx: &Fx, origins: Value) -> Value {
    admin_post(
        &fx.gw,
        "/admin/v1/api-keys",
        json!({"service_account": fx.sa["id"], "scope": "tiles:read", "allowed_origins": origins}),
    )
    .await
}

async fn key_with(fx: &Fx, tiles: Value) -> Value {
    let mut body = json!({"service_account": fx.sa["id"], "scope": "tiles:read"});
    if !tiles.is_null() {
        body["tiles"] = tiles;
    }
    admin_post(&fx.gw, "/admin/v1/api-keys", body).await
}

/// `POST /v1/auth/token` with `key` and `body`: status and JSON.
async fn exchange_with(fx: &Fx, key: &Value, body: Value) -> (u16, Value) {
    let r = http()
        .post(fx.gw.url("/v1/auth/token"))
        .bearer_auth(key["api_key"].as_str().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn token_of(fx: &Fx, key: &Value, body: Value) -> String {
    let (s, v) = exchange_with(fx, key, body).await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

async fn get(fx: &Fx, path: &str, token: &str) -> reqwest::Response {
    http().get(fx.gw.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn status(fx: &Fx, path: &str, token: &str) -> u16 {
    get(fx, path, token).await.status().as_u16()
}

/// Europe-ish, zoom 2 to 10, two layers.
fn europe() -> Value {
    json!({"minzoom": 2, "maxzoom": 10, "bounds": [[-10.0, 35.0, 30.0, 60.0]], "layers": ["basemap", "poi"]})
}

#[tokio::test]
async fn each_dimension_is_allowed_and_refused_at_its_edges() {
    let fx = setup().await;
    let key = key_with(&fx, europe()).await;
    let t = token_of(&fx, &key, json!({})).await;
    // Zoom: 2 and 10 are in, 1 and 11 out (tiles over central Europe).
    assert_eq!(status(&fx, "/g/basemap/2/2/1.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/1/1/0.pbf", &t).await, 404);
    assert_eq!(status(&fx, "/g/basemap/10/540/347.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/11/1080/694.pbf", &t).await, 404);
    // Area: (2,1,1) spans 90°W-0°, straddling the box's west edge (10°W):
    // in. (2,0,1) lies wholly west of it, (2,2,2) wholly south: out.
    assert_eq!(status(&fx, "/g/basemap/2/1/1.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/2/0/1.pbf", &t).await, 404);
    assert_eq!(status(&fx, "/g/basemap/2/2/2.pbf", &t).await, 404);
    // Layer.
    assert_eq!(status(&fx, "/g/poi/2/2/1.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/g/satellite/2/2/1.pbf", &t).await, 404);
    // A path that names no tile: 404, whatever the route's answer.
    assert_eq!(status(&fx, "/g/basemap/2/a/1.pbf", &t).await, 404);
    assert_eq!(status(&fx, "/g/basemap/2/4/1.pbf", &t).await, 404);
    assert_eq!(status(&fx, "/gf/basemap/2/4/1.pbf", &t).await, 404);
    // A route without tile coordinates ignores the grant.
    assert_eq!(status(&fx, "/plain/1/0/0.pbf", &t).await, 200);
    // A token without a grant reads any tile.
    let free = key_with(&fx, Value::Null).await;
    let ft = token_of(&fx, &free, json!({})).await;
    assert!(claims(&ft).get("tiles").is_none());
    assert_eq!(status(&fx, "/g/satellite/1/0/0.pbf", &ft).await, 200);
    // Counted by outcome.
    let m = |o: &str| format!("tilegate_tile_grant_checks_total{{outcome=\"{o}\"}}");
    assert_eq!(metric(&fx.gw, &m("inside")).await, 4.0);
    assert_eq!(metric(&fx.gw, &m("outside_zoom")).await, 2.0);
    assert_eq!(metric(&fx.gw, &m("outside_area")).await, 2.0);
    assert_eq!(metric(&fx.gw, &m("outside_layer")).await, 1.0);
    assert_eq!(metric(&fx.gw, &m("no_tile")).await, 3.0);
}

/// A path a backend may read as another tile (a servlet container strips
/// `;` parameters, then resolves `..`) is refused unless every reading
/// names the tile that was checked, and never reaches the upstream.
#[tokio::test]
async fn a_path_that_some_backend_reads_as_another_tile_is_refused() {
    let fx = setup().await;
    // Europe at zooms 2-10, any layer (the route names none).
    let key = key_with(&fx, json!({"minzoom": 2, "maxzoom": 10, "bounds": [[-10, 35, 30, 60]]})).await;
    let t = token_of(&fx, &key, json!({})).await;
    assert_eq!(status(&fx, "/rest/2/2/1/style.json", &t).await, 200);
    // Readings that keep the tile: allowed.
    assert_eq!(status(&fx, "/rest/2/2/1/style.json;v=1", &t).await, 200);
    assert_eq!(status(&fx, "/rest/2/2/1/a%20b", &t).await, 200);
    let before = fx.seen.load(Ordering::SeqCst);
    for p in [
        // Read by Tomcat as /rest/11/1080/694/x: zoom 11, outside the grant.
        "/rest/2/2/1/..;/..;/..;/11/1080/694/x",
        "/rest/2/2/1/..;a/..;/..;/11/1080/694/x",
        // Decoded by the backend into the same climb.
        "/rest/2/2/1/%2e%2e;/%2e%2e;/%2e%2e;/11/1080/694/x",
    ] {
        assert_eq!(status(&fx, p, &t).await, 404, "{p}");
    }
    assert_eq!(fx.seen.load(Ordering::SeqCst), before, "the upstream was asked");
}

#[tokio::test]
async fn each_out_of_grant_answer_and_the_upstream_is_not_asked() {
    let fx = setup().await;
    let key = key_with(&fx, europe()).await;
    let t = token_of(&fx, &key, json!({})).await;
    let before = fx.seen.load(Ordering::SeqCst);
    // Default: the gateway's own 404, as for a path it has no route for.
    let r = get(&fx, "/g/basemap/1/1/0.pbf", &t).await;
    assert_eq!(r.status(), 404);
    let no_route = get(&fx, "/nothing/here", &t).await;
    assert_eq!(r.text().await.unwrap(), no_route.text().await.unwrap());
    // Forbidden: a JSON error naming the dimension.
    for (path, dim) in [
        ("/gf/basemap/1/1/0.pbf", "zoom"),
        ("/gf/basemap/2/0/1.pbf", "area"),
        ("/gf/satellite/2/2/1.pbf", "layer"),
    ] {
        let r = get(&fx, path, &t).await;
        assert_eq!(r.status(), 403, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "tile_not_granted");
        assert!(v["error_description"].as_str().unwrap().contains(dim), "{v}");
    }
    // No content, and an empty 200.
    let r = get(&fx, "/gn/basemap/1/1/0.pbf", &t).await;
    assert_eq!(r.status(), 204);
    assert!(r.headers()["cache-control"].to_str().unwrap().starts_with("private"));
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(&fx, "/ge/basemap/1/1/0.pbf", &t).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(
        fx.seen.load(Ordering::SeqCst),
        before,
        "no refused tile reached the upstream"
    );
    // Inside the grant, each route forwards.
    for p in ["/gf", "/gn", "/ge"] {
        let r = get(&fx, &format!("{p}/poi/2/2/1.pbf"), &t).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), format!("tile:{p}/poi/2/2/1.pbf"));
    }
}

#[tokio::test]
async fn antimeridian_boxes_and_tms_rows() {
    let fx = setup().await;
    // North of 50°, across the antimeridian from 170°E to 170°W.
    let key = key_with(&fx, json!({"bounds": [[170, 50, -170, 80]]})).await;
    let t = token_of(&fx, &key, json!({})).await;
    // Zoom 3: columns of 45°; xyz row 1 is about 66°N-79°N, row 6 the
    // same band south.
    assert_eq!(status(&fx, "/g/any/3/7/1.pbf", &t).await, 200, "east of 135°E");
    assert_eq!(status(&fx, "/g/any/3/0/1.pbf", &t).await, 200, "west of 135°W");
    assert_eq!(status(&fx, "/g/any/3/4/1.pbf", &t).await, 404, "0°-45°E");
    assert_eq!(status(&fx, "/g/any/3/7/6.pbf", &t).await, 404, "the south");
    // The TMS route counts rows from the south: its row 6 is xyz row 1.
    assert_eq!(status(&fx, "/tms/3/7/6.png", &t).await, 200);
    assert_eq!(status(&fx, "/tms/3/7/1.png", &t).await, 404);
}

#[tokio::test]
async fn exchange_narrows_within_the_key_and_refuses_more() {
    let fx = setup().await;
    let key = key_with(&fx, europe()).await;
    assert_eq!(key["tiles"]["maxzoom"], 10, "{key}");
    // Omitted: the key's grant.
    let (s, v) = exchange_with(&fx, &key, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(v["tiles"], europe());
    assert_eq!(claims(v["access_token"].as_str().unwrap())["tiles"], europe());
    // Narrower: the dimensions left out come from the key.
    let (s, v) = exchange_with(&fx, &key, json!({"tiles": {"maxzoom": 8, "layers": ["poi"]}})).await;
    assert_eq!(s, 200, "{v}");
    let want = json!({"minzoom": 2, "maxzoom": 8, "bounds": [[-10.0, 35.0, 30.0, 60.0]], "layers": ["poi"]});
    assert_eq!(claims(v["access_token"].as_str().unwrap())["tiles"], want);
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(status(&fx, "/g/poi/2/2/1.pbf", t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/2/2/1.pbf", t).await, 404);
    assert_eq!(status(&fx, "/g/poi/9/270/173.pbf", t).await, 404);
    // Wider in any dimension: 403 tiles_exceeded.
    for wider in [
        json!({"maxzoom": 12}),
        json!({"minzoom": 1}),
        json!({"bounds": [[-20, 35, 30, 60]]}),
        json!({"layers": ["satellite"]}),
        json!({"minzoom": 11}),
    ] {
        let (s, v) = exchange_with(&fx, &key, json!({ "tiles": wider })).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap()),
            (403, "tiles_exceeded"),
            "{wider}: {v}"
        );
    }
    // Not a grant: 400 invalid_tiles.
    for bad in [
        json!({"minzoom": 5, "maxzoom": 3}),
        json!({"maxzoom": 31}),
        json!({"bounds": [[-10, 60, 30, 35]]}),
        json!({"bounds": [[-190, 35, 30, 60]]}),
        json!({"bounds": [[-10, 35, 30, 95]]}),
        json!({"layers": []}),
        json!({"zoom": 3}),
    ] {
        let (s, v) = exchange_with(&fx, &key, json!({ "tiles": bad })).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_tiles"), "{bad}: {v}");
    }
    // A key without a grant gives a narrowed token one.
    let free = key_with(&fx, Value::Null).await;
    let t = token_of(&fx, &free, json!({"tiles": {"maxzoom": 3}})).await;
    assert_eq!(claims(&t)["tiles"], json!({"maxzoom": 3}));
    assert_eq!(status(&fx, "/g/x/4/0/0.pbf", &t).await, 404);
}

#[tokio::test]
async fn api_key_ceilings_from_the_cli_and_the_admin_api() {
    let fx = setup().await;
    let sa = fx.sa["id"].as_str().unwrap();
    let args = [
        "--json",
        "api-key",
        "create",
        "--service-account",
        sa,
        "--scope",
        "tiles:read",
        "--maxzoom",
        "5",
        "--bounds",
        "170,-20,-170,20",
        "--layer",
        "basemap",
    ];
    let out = fx.gw.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = json!({"maxzoom": 5, "bounds": [[170.0, -20.0, -170.0, 20.0]], "layers": ["basemap"]});
    assert_eq!(key["tiles"], want);
    let t = token_of(&fx, &key, json!({})).await;
    assert_eq!(claims(&t)["tiles"], want);
    // The admin API lists the key with its ceiling.
    let listed: Value = http()
        .get(fx.gw.admin_url("/admin/v1/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|k| k["tiles"] == want),
        "{listed}"
    );
    // Bad flags change nothing.
    for bad in [
        &["--bounds", "1,2,3"][..],
        &["--minzoom", "9", "--maxzoom", "3"],
        &["--bounds", "0,10,20,5"],
    ] {
        let mut a = vec![
            "--json",
            "api-key",
            "create",
            "--service-account",
            sa,
            "--scope",
            "tiles:read",
        ];
        a.extend_from_slice(bad);
        let out = fx.gw.cli(&a);
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
    }
    // The admin API refuses a bad grant with 400 invalid_tiles.
    let r = http()
        .post(fx.gw.admin_url("/admin/v1/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"service_account": sa, "scope": "tiles:read", "tiles": {"layers": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_tiles");
    let keys: Value = http()
        .get(fx.gw.admin_url("/admin/v1/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1, "only the good key was made");
}

#[tokio::test]
async fn authenticated_responses_are_private_unless_the_route_shares_them() {
    let fx = setup().await;
    let key = key_with(&fx, Value::Null).await;
    let t = token_of(&fx, &key, json!({})).await;
    let header = |r: &reqwest::Response, n: &str| {
        r.headers()
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Token in a header: private, upstream's max-age kept, public and
    // s-maxage gone, Vary names Authorization.
    let r = get(&fx, "/g/basemap/1/0/0.pbf", &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "private, max-age=600");
    assert!(header(&r, "vary").to_ascii_lowercase().contains("authorization"));
    // The upstream's no-store is kept.
    let r = get(&fx, "/g/nostore/1/0/0.pbf", &t).await;
    assert_eq!(header(&r, "cache-control"), "private, no-store");
    // Token in the query: private, and no Vary on a header it did not use.
    let r = http()
        .get(fx.gw.url(&format!("/g/basemap/1/0/0.pbf?access_token={t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "private, max-age=600");
    assert!(!header(&r, "vary").to_ascii_lowercase().contains("authorization"));
    // shared_cache = true: the upstream's headers as they are.
    let r = get(&fx, "/shared/basemap/1/0/0.pbf", &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=600, s-maxage=3600");
    assert!(!header(&r, "vary").to_ascii_lowercase().contains("authorization"));
    // A public route is untouched.
    let r = http().get(fx.gw.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=600, s-maxage=3600");
}

#[tokio::test]
async fn origin_binding_with_and_without_headers() {
    let fx = setup().await;
    let key = key_for_origins(&fx, json!(["https://app.example.com", "https://*.maps.example"])).await;
    let t = token_of(&fx, &key, json!({})).await;
    assert_eq!(
        claims(&t)["origins"],
        json!(["https://app.example.com", "https://*.maps.example"])
    );
    let with = |path: &str, h: Option<(&'static str, &str)>| {
        let mut r = http().get(fx.gw.url(path)).bearer_auth(&t);
        if let Some((n, v)) = h {
            r = r.header(n, v);
        }
        r
    };
    let code = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status().as_u16() };
    let o = |v: &str| Some(("origin", v.to_owned()));
    for (h, want) in [
        (o("https://app.example.com"), 200),
        (o("https://a.maps.example"), 200),
        (o("https://a.b.maps.example"), 403),
        (o("https://maps.example"), 403),
        (o("http://app.example.com"), 403),
        (o("https://evil.example"), 403),
        (Some(("referer", "https://app.example.com/map?x=1".to_owned())), 200),
        (
            Some(("referer", "https://evil.example/app.example.com".to_owned())),
            403,
        ),
        (None, 403),
    ] {
        let r = with("/bound/1/0/0.pbf", h.as_ref().map(|(n, v)| (*n, v.as_str())));
        assert_eq!(code(r).await, want, "{h:?}");
    }
    // Origin wins over Referer.
    let r = with("/bound/1/0/0.pbf", Some(("origin", "https://evil.example")))
        .header("referer", "https://app.example.com/");
    assert_eq!(code(r).await, 403);
    // The refusal names itself.
    let r = with("/bound/1/0/0.pbf", Some(("origin", "https://evil.example")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "origin_not_allowed");
    // missing_origin = "allow": neither header passes, a wrong one does not.
    assert_eq!(code(with("/bound-lax/1/0/0.pbf", None)).await, 200);
    assert_eq!(
        code(with("/bound-lax/1/0/0.pbf", Some(("origin", "https://evil.example")))).await,
        403
    );
    // A route without bind_origin, and a token without origins, ignore it.
    assert_eq!(
        code(with("/plain/1/0/0.pbf", Some(("origin", "https://evil.example")))).await,
        200
    );
    let free = key_with(&fx, Value::Null).await;
    let ft = token_of(&fx, &free, json!({})).await;
    let r = http()
        .get(fx.gw.url("/bound/1/0/0.pbf"))
        .bearer_auth(&ft)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad patterns are refused when the key is made.
    let r = http()
        .post(fx.gw.admin_url("/admin/v1/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"service_account": fx.sa["id"], "scope": "tiles:read", "allowed_origins": ["*.example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let out = fx.gw.cli(&[
        "--json",
        "api-key",
        "create",
        "--service-account",
        fx.sa["id"].as_str().unwrap(),
        "--scope",
        "tiles:read",
        "--allowed-origin",
        "https://*.example.com",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(k["allowed_origins"], json!(["https://*.example.com"]));
}

#[tokio::test]
async fn operator_minted_tokens_may_carry_a_grant() {
    let fx = setup().await;
    let out = fx.gw.cli(&[
        "token",
        "mint",
        "--scope",
        "tiles:read",
        "--maxzoom",
        "3",
        "--layer",
        "basemap",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(claims(&t)["tiles"], json!({"maxzoom": 3, "layers": ["basemap"]}));
    assert_eq!(status(&fx, "/g/basemap/3/0/0.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/4/0/0.pbf", &t).await, 404);
    assert_eq!(status(&fx, "/g/poi/3/0/0.pbf", &t).await, 404);
    let out = fx.gw.cli(&[
        "token",
        "mint",
        "--scope",
        "tiles:read",
        "--minzoom",
        "5",
        "--maxzoom",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(64));
}

#[tokio::test]
async fn named_tokens_may_carry_a_grant() {
    let fx = setup().await;
    let json_of = |args: &[&str], stdin: Option<&str>| -> Value {
        let out = match stdin {
            Some(s) => fx.gw.cli_stdin(args, s),
            None => fx.gw.cli(args),
        };
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let org = json_of(&["--json", "org", "create", "named-org"], None);
    let user = json_of(
        &[
            "--json",
            "user",
            "create",
            "--org",
            org["id"].as_str().unwrap(),
            "--username",
            "nora",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    let g = json_of(
        &[
            "--json",
            "generator-token",
            "show",
            "--user",
            user["uid"].as_str().unwrap(),
        ],
        None,
    );
    let generator = g["token"].as_str().unwrap();
    let named = |tiles: Option<&str>| {
        let mut q = vec![
            ("name", "map"),
            ("validTime", "60"),
            ("action", "read_only"),
            ("resourceType", "all"),
        ];
        if let Some(t) = tiles {
            q.push(("tiles", t));
        }
        http()
            .post(fx.gw.url("/oauth/v1/user/token"))
            .query(&q)
            .bearer_auth(generator)
            .send()
    };
    let r = named(Some(r#"{"maxzoom":4,"layers":["basemap"]}"#)).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let want = json!({"maxzoom": 4, "layers": ["basemap"]});
    assert_eq!(v["tiles"], want);
    let t = v["token"].as_str().unwrap();
    assert_eq!(claims(t)["tiles"], want);
    assert_eq!(status(&fx, "/g/basemap/4/0/0.pbf", t).await, 200);
    assert_eq!(status(&fx, "/g/basemap/5/0/0.pbf", t).await, 404);
    // A bad grant: 400 invalid_tiles, and no named token is made.
    let r = named(Some(r#"{"minzoom":5,"maxzoom":4}"#)).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_tiles");
    let list = json_of(&["--json", "named-token", "list"], None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    // Without tiles: no grant.
    let v: Value = named(None).await.unwrap().json().await.unwrap();
    assert!(claims(v["token"].as_str().unwrap()).get("tiles").is_none());
    // Every listing shows the grant of the token that has one, and none
    // for the token without: the user's endpoint, the CLI, the admin API.
    let mine: Value = http()
        .get(fx.gw.url("/oauth/v1/user/tokens"))
        .bearer_auth(generator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = |list: &Value| -> Vec<Value> {
        let mut g: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.get("tiles").cloned().unwrap_or(Value::Null))
            .collect();
        g.sort_by_key(|v| v.is_null());
        g
    };
    assert_eq!(grants(&mine["tokens"]), vec![want.clone(), Value::Null], "{mine}");
    let cli = json_of(&["--json", "named-token", "list"], None);
    assert_eq!(grants(&cli), vec![want.clone(), Value::Null], "{cli}");
    let admin: Value = http()
        .get(fx.gw.admin_url("/admin/v1/named-tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grants(&admin), vec![want, Value::Null], "{admin}");
}

#[tokio::test]
async fn api_key_listings_show_their_grant() {
    let fx = setup().await;
    let limited = admin_post(
        &fx.gw,
        "/admin/v1/api-keys",
        json!({"service_account": fx.sa["id"], "scope": "tiles:read", "tiles": alps(),
               "allowed_origins": ["https://app.example.com"]}),
    )
    .await;
    key_with(&fx, Value::Null).await;
    let check = |list: &Value| {
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        let l = list.iter().find(|k| k["id"] == limited["id"]).unwrap();
        assert_eq!(l["tiles"], alps());
        assert_eq!(l["allowed_origins"], json!(["https://app.example.com"]));
        let free = list.iter().find(|k| k["id"] != limited["id"]).unwrap();
        assert!(
            free.get("tiles").is_none() && free.get("allowed_origins").is_none(),
            "{free}"
        );
    };
    check(&admin_get(&fx, "/admin/v1/api-keys").await);
    let out = fx.gw.cli(&["--json", "api-key", "list"]);
    assert!(out.status.success());
    check(&serde_json::from_slice(&out.stdout).unwrap());
    // Revoking answers with the key, its grant included.
    let r: Value = http()
        .delete(
            fx.gw
                .admin_url(&format!("/admin/v1/api-keys/{}", limited["id"].as_str().unwrap())),
        )
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["tiles"], alps(), "{r}");
}

/// The Alps at zooms 2 to 6, one layer, from one web site.
fn alps() -> Value {
    json!({"minzoom": 2, "maxzoom": 6, "bounds": [[5.0, 44.0, 17.0, 48.0]], "layers": ["basemap"]})
}

/// `PATCH` on the admin API: status and JSON.
async fn admin_patch(fx: &Fx, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .patch(fx.gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn admin_get(fx: &Fx, path: &str) -> Value {
    let r = http()
        .get(fx.gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// `POST /oauth/token` client_credentials (Basic) with extra parameters.
async fn client_token(fx: &Fx, id: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let r = http()
        .post(fx.gw.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn client_ceilings_bound_client_credentials_tokens() {
    let fx = setup().await;
    let org = admin_get(&fx, "/admin/v1/orgs").await[0].clone();
    admin_user_ana(&fx.gw, &org).await;
    let login: Value = password_grant_ana(&fx.gw).await.unwrap().json().await.unwrap();
    let made: Value = http()
        .post(fx.gw.url("/v1/clients"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .json(&json!({"name": "map", "scope": "tiles:read"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        made["client_id"].as_str().unwrap(),
        made["client_secret"].as_str().unwrap(),
    );
    // Without a ceiling: no grant in the token.
    let (s, v) = client_token(&fx, id, secret, &[]).await;
    assert_eq!(s, 200, "{v}");
    assert!(claims(v["access_token"].as_str().unwrap()).get("tiles").is_none());
    // The operator sets a ceiling with the CLI.
    let out = fx.gw.cli(&[
        "--json",
        "client",
        "set-grant",
        id,
        "--minzoom",
        "2",
        "--maxzoom",
        "6",
        "--bounds",
        "5,44,17,48",
        "--layer",
        "basemap",
        "--allowed-origin",
        "https://*.example.com",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["tiles"], alps());
    // Omitted: the ceiling, in the claims and the answer.
    let (s, v) = client_token(&fx, id, secret, &[]).await;
    assert_eq!(s, 200, "{v}");
    let t = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&t)["tiles"], alps());
    assert_eq!(claims(&t)["origins"], json!(["https://*.example.com"]));
    assert_eq!(v["tiles"], alps());
    assert_eq!(v["allowed_origins"], json!(["https://*.example.com"]));
    // The token is refused out of its grant on a tile route: zoom 7,
    // zoom 1, an area west of the box, another layer.
    assert_eq!(status(&fx, "/gf/basemap/4/8/5.pbf", &t).await, 200);
    for out_of_grant in [
        "/gf/basemap/7/67/45.pbf",
        "/gf/basemap/1/1/0.pbf",
        "/gf/basemap/4/5/5.pbf",
        "/gf/poi/4/8/5.pbf",
    ] {
        assert_eq!(status(&fx, out_of_grant, &t).await, 403, "{out_of_grant}");
    }
    // Narrowing within: what is left out is the ceiling's.
    let (s, v) = client_token(
        &fx,
        id,
        secret,
        &[
            ("tiles", r#"{"maxzoom":4}"#),
            ("allowed_origins", "https://maps.example.com"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let n = claims(v["access_token"].as_str().unwrap());
    assert_eq!(
        n["tiles"],
        json!({"minzoom": 2, "maxzoom": 4, "bounds": [[5.0, 44.0, 17.0, 48.0]], "layers": ["basemap"]})
    );
    assert_eq!(n["origins"], json!(["https://maps.example.com"]));
    // Beyond the ceiling: 403, by dimension and by origin.
    for (extra, code) in [
        (("tiles", r#"{"maxzoom":7}"#), "tiles_exceeded"),
        (("tiles", r#"{"bounds":[[0,44,17,48]]}"#), "tiles_exceeded"),
        (("tiles", r#"{"layers":["poi"]}"#), "tiles_exceeded"),
        (("allowed_origins", "https://evil.example.net"), "origins_exceeded"),
        (("allowed_origins", "https://*.maps.example.com"), "origins_exceeded"),
    ] {
        let (s, v) = client_token(&fx, id, secret, &[extra]).await;
        assert_eq!((s, v["error"].as_str()), (403, Some(code)), "{extra:?}: {v}");
    }
    // Malformed: 400.
    for (extra, code) in [
        (("tiles", r#"{"maxzoom":31}"#), "invalid_tiles"),
        (("tiles", "z<6"), "invalid_tiles"),
        (("allowed_origins", "*.example.com"), "invalid_request"),
    ] {
        let (s, v) = client_token(&fx, id, secret, &[extra]).await;
        assert_eq!((s, v["error"].as_str()), (400, Some(code)), "{extra:?}: {v}");
    }
    // The admin API sets the same way and refuses a bad grant, changing
    // nothing; the listings show the ceiling.
    let (s, v) = admin_patch(
        &fx,
        &format!("/admin/v1/clients/{id}"),
        json!({"tiles": {"layers": []}}),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_tiles")));
    let (s, _) = admin_patch(
        &fx,
        &format!("/admin/v1/clients/{id}"),
        json!({"allowed_origins": ["https://app.example.com/"]}),
    )
    .await;
    assert_eq!(s, 400);
    let listed = admin_get(&fx, "/admin/v1/clients").await;
    assert_eq!(listed[0]["tiles"], alps(), "{listed}");
    assert_eq!(listed[0]["allowed_origins"], json!(["https://*.example.com"]));
    let mine: Value = http()
        .get(fx.gw.url("/v1/clients"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["clients"][0]["tiles"], alps(), "{mine}");
    let out = fx.gw.cli(&["--json", "client", "list"]);
    let cl: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cl[0]["allowed_origins"], json!(["https://*.example.com"]));
    // A merge patch: what it leaves out stays. Origins only: the tokens
    // still carry the tile ceiling.
    let path = format!("/admin/v1/clients/{id}");
    let (s, v) = admin_patch(&fx, &path, json!({"allowed_origins": ["https://maps.example.com"]})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tiles"], alps(), "{v}");
    let (_, v) = client_token(&fx, id, secret, &[]).await;
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["tiles"], alps(), "{c}");
    assert_eq!(c["origins"], json!(["https://maps.example.com"]));
    // Nothing named: nothing changes.
    let (s, v) = admin_patch(&fx, &path, json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["tiles"], &v["allowed_origins"]),
        (&alps(), &json!(["https://maps.example.com"]))
    );
    // An empty origin list is refused (null removes the limit), a bad
    // member of a patch changes no other member.
    let (s, v) = admin_patch(&fx, &path, json!({"allowed_origins": []})).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    let (s, v) = admin_patch(&fx, &path, json!({"tiles": null, "allowed_origins": ["bad"]})).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    assert_eq!(admin_get(&fx, "/admin/v1/clients").await[0]["tiles"], alps());
    // `tiles: null` removes the tile limit and keeps the origins.
    let (s, v) = admin_patch(&fx, &path, json!({"tiles": null})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("tiles").is_none(), "{v}");
    let (_, v) = client_token(&fx, id, secret, &[]).await;
    let c = claims(v["access_token"].as_str().unwrap());
    assert!(c.get("tiles").is_none(), "{c}");
    assert_eq!(c["origins"], json!(["https://maps.example.com"]));
    // Cleared: tokens carry no grant again.
    let (s, v) = admin_patch(&fx, &path, json!({"tiles": null, "allowed_origins": null})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("tiles").is_none(), "{v}");
    assert!(v.get("allowed_origins").is_none(), "{v}");
    let (_, v) = client_token(&fx, id, secret, &[]).await;
    let c = claims(v["access_token"].as_str().unwrap());
    assert!(c.get("tiles").is_none() && c.get("origins").is_none(), "{c}");
    let (s, _) = admin_patch(&fx, "/admin/v1/clients/tgc_none", json!({})).await;
    assert_eq!(s, 404);
}

/// `POST /oauth/token` with the service-account JSON grant.
async fn sa_grant(fx: &Fx, key: &Value, extra: Value) -> (u16, Value) {
    let mut body = json!({"grantType": "exchange_api_key_access_token", "apiKey": key["api_key"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = http().post(fx.gw.url("/oauth/token")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn service_account_ceilings_bound_their_keys_and_tokens() {
    let fx = setup().await;
    let org = admin_get(&fx, "/admin/v1/orgs").await[0].clone();
    let sa = admin_post(
        &fx.gw,
        "/admin/v1/service-accounts",
        json!({"org": org["id"], "name": "partner", "tiles": alps(),
               "allowed_origins": ["https://*.example.com"]}),
    )
    .await;
    assert_eq!(sa["tiles"], alps());
    let key_for = |body: Value| {
        let mut b = json!({"service_account": sa["id"], "scope": "tiles:read"});
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        http()
            .post(fx.gw.admin_url("/admin/v1/api-keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&b)
            .send()
    };
    // A key that asks nothing gets the service account's ceiling.
    let key: Value = key_for(json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(key["tiles"], alps(), "{key}");
    assert_eq!(key["allowed_origins"], json!(["https://*.example.com"]));
    // The service-account grant: the ceiling, or narrower, never more.
    let (s, v) = sa_grant(&fx, &key, json!({})).await;
    assert_eq!(s, 200, "{v}");
    let t = v["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(claims(&t)["tiles"], alps());
    assert_eq!(claims(&t)["origins"], json!(["https://*.example.com"]));
    assert_eq!(status(&fx, "/gf/basemap/4/8/5.pbf", &t).await, 200);
    assert_eq!(status(&fx, "/gf/basemap/7/67/45.pbf", &t).await, 403);
    assert_eq!(status(&fx, "/gf/basemap/4/5/5.pbf", &t).await, 403);
    let (s, v) = sa_grant(&fx, &key, json!({"tiles": {"maxzoom": 3}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(claims(v["accessToken"].as_str().unwrap())["tiles"]["maxzoom"], 3);
    let (s, v) = sa_grant(&fx, &key, json!({"tiles": {"maxzoom": 9}})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("tiles_exceeded")), "{v}");
    let (s, v) = sa_grant(&fx, &key, json!({"allowed_origins": ["https://evil.example.net"]})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("origins_exceeded")), "{v}");
    // The API-key exchange takes the same narrowing.
    let (s, v) = exchange_with(&fx, &key, json!({"tiles": {"layers": ["poi"]}})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("tiles_exceeded")), "{v}");
    // A key beyond its service account's ceiling is not made.
    for (asked, code) in [
        (json!({"tiles": {"maxzoom": 9}}), "tiles_exceeded"),
        (
            json!({"allowed_origins": ["https://*.example.org"]}),
            "origins_exceeded",
        ),
    ] {
        let r = key_for(asked.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{asked}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], code);
    }
    let narrow: Value = key_for(json!({"tiles": {"maxzoom": 4}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(narrow["tiles"]["maxzoom"], 4, "{narrow}");
    // A ceiling lowered later (admin API: this replica's key cache is
    // refreshed at once) binds the keys made before: a key beyond it mints
    // nothing, a key within it goes on.
    let sa_path = format!("/admin/v1/service-accounts/{}", sa["id"].as_str().unwrap());
    let (s, v) = admin_patch(
        &fx,
        &sa_path,
        json!({"tiles": {"maxzoom": 4, "bounds": [[5, 44, 17, 48]], "layers": ["basemap"]}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = sa_grant(&fx, &key, json!({})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("tiles_exceeded")), "{v}");
    let (s, v) = sa_grant(&fx, &narrow, json!({})).await;
    assert_eq!(s, 200, "{v}");
    // The listings show the ceilings.
    let listed = admin_get(&fx, "/admin/v1/service-accounts").await;
    let p = listed.as_array().unwrap().iter().find(|s| s["id"] == sa["id"]).unwrap();
    assert_eq!(p["tiles"]["maxzoom"], 4, "{listed}");
    // The patch named only the tiles: the origins stay.
    assert_eq!(p["allowed_origins"], json!(["https://*.example.com"]), "{listed}");
    let out = fx.gw.cli(&["--json", "service-account", "list"]);
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(l.as_array().unwrap().iter().any(|s| s["tiles"]["maxzoom"] == 4), "{l}");
    // The CLI sets it the same way.
    let out = fx.gw.cli(&[
        "--json",
        "service-account",
        "set-grant",
        sa["id"].as_str().unwrap(),
        "--maxzoom",
        "3",
        "--allowed-origin",
        "https://maps.example.com",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["tiles"], json!({"maxzoom": 3}));
    assert_eq!(set["allowed_origins"], json!(["https://maps.example.com"]));
    // A flag not given leaves its limit; --clear-tiles / --clear-origins
    // remove one.
    let sa_id = sa["id"].as_str().unwrap();
    let out = fx
        .gw
        .cli(&["--json", "service-account", "set-grant", sa_id, "--clear-tiles"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(set.get("tiles").is_none(), "{set}");
    assert_eq!(set["allowed_origins"], json!(["https://maps.example.com"]));
    let out = fx
        .gw
        .cli(&["--json", "service-account", "set-grant", sa_id, "--maxzoom", "5"]);
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["tiles"], json!({"maxzoom": 5}));
    assert_eq!(set["allowed_origins"], json!(["https://maps.example.com"]));
    let out = fx
        .gw
        .cli(&["--json", "service-account", "set-grant", sa_id, "--clear-origins"]);
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["tiles"], json!({"maxzoom": 5}));
    assert!(set.get("allowed_origins").is_none(), "{set}");
    let out = fx
        .gw
        .cli(&["service-account", "set-grant", sa_id, "--clear-tiles", "--maxzoom", "5"]);
    assert!(!out.status.success());
    let out = fx.gw.cli(&["service-account", "set-grant", "sa_none"]);
    assert_eq!(out.status.code(), Some(64));
    // A bad ceiling: 400 and nothing made.
    let r = http()
        .post(fx.gw.admin_url("/admin/v1/service-accounts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"org": org["id"], "name": "bad", "tiles": {"minzoom": 9, "maxzoom": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_tiles");
    let (s, v) = admin_patch(
        &fx,
        &format!("/admin/v1/service-accounts/{}", sa["id"].as_str().unwrap()),
        json!({"tiles": {"maxzoom": 31}}),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_tiles")));
    assert_eq!(
        admin_get(&fx, "/admin/v1/service-accounts")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn exchange_narrows_origins_within_the_key() {
    let fx = setup().await;
    let key = key_for_origins(&fx, json!(["https://*.example.com", "http://localhost:8080"])).await;
    // Omitted: the key's.
    let t = token_of(&fx, &key, json!({})).await;
    assert_eq!(
        claims(&t)["origins"],
        json!(["https://*.example.com", "http://localhost:8080"])
    );
    // An exact origin under the key's wildcard, and the same wildcard.
    let (s, v) = exchange_with(&fx, &key, json!({"allowed_origins": ["https://maps.example.com"]})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["allowed_origins"], json!(["https://maps.example.com"]));
    let narrow = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&narrow)["origins"], json!(["https://maps.example.com"]));
    let from = |token: &str, origin: &str| {
        http()
            .get(fx.gw.url("/bound/1/0/0.pbf"))
            .bearer_auth(token)
            .header("origin", origin)
            .send()
    };
    assert_eq!(from(&narrow, "https://maps.example.com").await.unwrap().status(), 200);
    // Allowed by the key, not by the narrowed token.
    assert_eq!(from(&t, "https://other.example.com").await.unwrap().status(), 200);
    assert_eq!(from(&narrow, "https://other.example.com").await.unwrap().status(), 403);
    assert_eq!(from(&narrow, "http://localhost:8080").await.unwrap().status(), 403);
    let (s, v) = exchange_with(&fx, &key, json!({"allowed_origins": ["https://*.example.com"]})).await;
    assert_eq!(s, 200, "{v}");
    // Beyond the key: 403 origins_exceeded.
    for beyond in [
        json!(["https://evil.example.net"]),
        json!(["https://maps.example.com", "http://localhost:8081"]),
        json!(["https://*.maps.example.com"]),
        json!(["https://example.com"]),
        json!(["http://maps.example.com"]),
    ] {
        let (s, v) = exchange_with(&fx, &key, json!({"allowed_origins": beyond})).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("origins_exceeded")),
            "{beyond}: {v}"
        );
    }
    // Malformed: 400.
    for bad in [
        json!([]),
        json!("https://maps.example.com"),
        json!(["https://maps.example.com/"]),
    ] {
        let (s, v) = exchange_with(&fx, &key, json!({"allowed_origins": bad})).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{bad}: {v}");
    }
    // A key without origins: any valid set may be asked, and is carried.
    let free = key_with(&fx, Value::Null).await;
    let (s, v) = exchange_with(&fx, &free, json!({"allowed_origins": ["https://app.example.com"]})).await;
    assert_eq!(s, 200, "{v}");
    let bound = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(from(&bound, "https://app.example.com").await.unwrap().status(), 200);
    assert_eq!(from(&bound, "https://evil.example").await.unwrap().status(), 403);
}
