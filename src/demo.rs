//! `tilegate demo`: one command to see tilegate work. It starts
//! - a sample tile upstream: Mapbox Vector Tiles of Natural Earth's countries
//!   (layers `land`, `countries`, `boundaries`; see [`world`]), cut on request,
//! - the gateway on the sample config (SQLite, keys generated on first run),
//! - an app backend that serves the MapLibre and Leaflet examples and
//!   `POST /app/token`,
//!   which exchanges a server-side API key for a short-lived token (narrowed
//!   to the body's `tiles` grant, if it has one),
//!
//! and prints a working API key with curl lines.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::store::Principal;

mod world;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Config file the demo's gateway runs on (the demo reads only this
    /// one: not TILEGATE_CONFIG).
    #[arg(long, value_name = "FILE", default_value = "config/tilegate.toml")]
    pub demo_config: PathBuf,
    /// Where the sample tile upstream listens (must match the config).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub upstream: SocketAddr,
    /// Where the example app (MapLibre and Leaflet pages, token backend) listens.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub app: SocketAddr,
}

/// Serve generated tiles at `/tiles/{z}/{x}/{y}.pbf` until the listener
/// closes. Used by the demo and the benchmarks.
pub async fn serve_tiles(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(tile_response(req.uri().path()))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn tile_response(path: &str) -> Response<Full<Bytes>> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let zxy = match parts.as_slice() {
        ["tiles", z, x, y] => y
            .strip_suffix(".pbf")
            .and_then(|y| Some((z.parse::<u32>().ok()?, x.parse::<u32>().ok()?, y.parse::<u32>().ok()?))),
        _ => None,
    };
    match zxy {
        Some((z, x, y)) if z <= 22 && x < 1 << z && y < 1 << z => {
            let mut r = Response::new(Full::new(world::cached_tile(z, x, y)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
            );
            r
        }
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// Create the demo org, service account and API key once; the key's plain
/// text is kept in `<data>/demo-api-key` (0600) so a rerun can print it.
async fn bootstrap(store: &crate::store::Store, cfg: &crate::config::Config) -> Result<String, String> {
    let key_file = cfg
        .store
        .kek_file
        .parent()
        .map(|d| d.join("demo-api-key"))
        .unwrap_or_else(|| PathBuf::from("demo-api-key"));
    if let Ok(k) = std::fs::read_to_string(&key_file) {
        let k = k.trim().to_owned();
        if let Ok(Some(rec)) = store.lookup_api_key(&k).await {
            if rec.revoked_at.is_none() {
                return Ok(k);
            }
        }
    }
    let org = match store.find_org("demo").await.map_err(|e| e.to_string())? {
        Some(o) => o,
        None => store
            .create_org("demo", crate::clock::now_unix())
            .await
            .map_err(|e| e.to_string())?,
    };
    let sa = store
        .create_service_account(&org.id, "demo-app", crate::clock::now_unix())
        .await
        .map_err(|e| e.to_string())?;
    let scope = cfg
        .scopes
        .keys()
        .filter(|s| *s != crate::issue::MANAGE_SCOPE)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let op = crate::credentials::Op::cli(store, cfg, "demo");
    let (_, text) =
        crate::credentials::api_keys::create_api_key(&op, &Principal::ServiceAccount(sa.id), &scope, None, &[], None)
            .await
            .map_err(|e| e.to_string())?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(&key_file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_file)
        .map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(text)
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let cfg = match crate::config::load(&args.demo_config) {
        Ok(c) => c,
        Err(e) => {
            e.problems().iter().for_each(|p| eprintln!("{p}"));
            return ExitCode::from(64);
        }
    };
    let up = match TcpListener::bind(args.upstream).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sample upstream {}: {e}", args.upstream);
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(serve_tiles(up));
    let store = match crate::state::open_store(&cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let api_key = match bootstrap(&store, &cfg).await {
        Ok(k) => k,
        Err(e) => {
            eprintln!("demo bootstrap: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gw = match crate::state::Gateway::new(cfg, store, Some(args.demo_config.clone())).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match crate::app::start(gw).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let gateway = format!("http://{}", running.addr);
    match TcpListener::bind(args.app).await {
        Ok(l) => {
            tokio::spawn(serve_app(
                l,
                Arc::new(AppState {
                    gateway: gateway.clone(),
                    api_key: api_key.clone(),
                }),
            ));
        }
        Err(e) => eprintln!("example app {}: {e} (the map page is not served)", args.app),
    }
    println!(
        "\ntilegate demo is running.\n\n  gateway:   {gateway}   (admin: {admin})\n  upstream:  http://{up}  (Natural Earth vector tiles)\n  map:       http://{app}/   (MapLibre through tilegate; Leaflet: http://{app}/leaflet/)\n\nA working API key (server-side secret; shown here for the demo):\n  {api_key}\n\nTry:\n  TOKEN=$(curl -s -X POST {gateway}/v1/auth/token -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' -d '{{\"ttl\":600,\"scope\":\"tiles:read\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  curl -s -o /dev/null -w '%{{http_code}}\\n' -H \"Authorization: Bearer $TOKEN\" {gateway}/tiles/0/0/0.pbf   # 200\n  curl -s -o /dev/null -w '%{{http_code}}\\n' {gateway}/tiles/0/0/0.pbf                                  # 401\n\nCtrl-C stops it.",
        admin = running.admin_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        up = args.upstream,
        app = args.app,
    );
    let _ = running.done.await;
    ExitCode::SUCCESS
}

struct AppState {
    gateway: String,
    api_key: String,
}

/// The example app: static files of `examples/maplibre` at `/`, of
/// `examples/leaflet` at `/leaflet/`, the JS client at `/clients/js/`,
/// `GET /app/config.json`, and `POST /app/token`
/// (the app backend's exchange; the API key never reaches the browser; a
/// JSON body's `tiles` is passed on to narrow the token's grant).
async fn serve_app(listener: TcpListener, st: Arc<AppState>) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let st = st.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let st = st.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(app(req, &st, &client).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type HttpClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn app(req: Request<Incoming>, st: &AppState, client: &HttpClient) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/app/config.json" {
        return text(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "gateway": st.gateway }).to_string(),
        );
    }
    if path == "/app/token" {
        let ttl: u64 = req
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|p| {
                p.into_iter()
                    .find(|(k, _)| k == "ttl")
                    .and_then(|(_, v)| v.parse().ok())
            })
            .unwrap_or(600);
        // An optional JSON body `{"tiles": {...}}` asks for a narrowed tile grant;
        // the gateway checks it (400 invalid_tiles, 403 tiles_exceeded).
        let tiles = match asked_tiles(req.into_body()).await {
            Ok(t) => t,
            Err(why) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    serde_json::json!({ "error": "invalid_request", "error_description": why }).to_string(),
                )
            }
        };
        let mut ask = serde_json::json!({ "ttl": ttl, "scope": "tiles:read" });
        if let Some(t) = tiles {
            ask["tiles"] = t;
        }
        let body = ask.to_string();
        let Ok(r) = Request::post(format!("{}/v1/auth/token", st.gateway))
            .header("authorization", format!("Bearer {}", st.api_key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
        else {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "bad request".into());
        };
        return match client.request(r).await {
            Ok(resp) => {
                let status = resp.status();
                let b = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let mut out = Response::new(Full::new(b));
                *out.status_mut() = status;
                out.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                out.headers_mut()
                    .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
                out
            }
            Err(_) => text(StatusCode::BAD_GATEWAY, "text/plain", "gateway unreachable".into()),
        };
    }
    if path == "/leaflet" {
        let mut r = text(StatusCode::MOVED_PERMANENTLY, "text/plain", "/leaflet/".into());
        r.headers_mut()
            .insert(http::header::LOCATION, http::HeaderValue::from_static("/leaflet/"));
        return r;
    }
    // Static files, confined to the three folders.
    let (base, rel) = if let Some(r) = path.strip_prefix("/clients/js/") {
        ("clients/js", r.to_owned())
    } else if let Some(r) = path.strip_prefix("/leaflet/") {
        ("examples/leaflet", r.to_owned())
    } else {
        ("examples/maplibre", path.trim_start_matches('/').to_owned())
    };
    let rel = if rel.is_empty() { "index.html".to_owned() } else { rel };
    if rel.split('/').any(|s| s == ".." || s.starts_with('.')) || rel.contains('\\') {
        return text(StatusCode::BAD_REQUEST, "text/plain", "bad path".into());
    }
    let file = PathBuf::from(base).join(&rel);
    match tokio::fs::read(&file).await {
        Ok(mut b) => {
            if base != "clients/js" && rel == "index.html" {
                // Point the page at the gateway (another origin than the app).
                let html = String::from_utf8_lossy(&b).replace(
                    "<meta name=\"tilegate-gateway\" content=\"\" />",
                    &format!("<meta name=\"tilegate-gateway\" content=\"{}\" />", st.gateway),
                );
                b = html.into_bytes();
            }
            let ct = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") | Some("mjs") => "text/javascript",
                Some("css") => "text/css",
                Some("json") => "application/json",
                Some("png") => "image/png",
                _ => "application/octet-stream",
            };
            let mut r = Response::new(Full::new(Bytes::from(b)));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    }
}

/// The `tiles` object of the demo token request's body: none for an empty
/// body, an object without `tiles`, or `"tiles": null`.
async fn asked_tiles(body: Incoming) -> Result<Option<serde_json::Value>, &'static str> {
    let bytes = http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map_err(|_| "the body could not be read (at most 64 KiB)")?
        .to_bytes();
    tiles_of_body(&bytes)
}

fn tiles_of_body(bytes: &[u8]) -> Result<Option<serde_json::Value>, &'static str> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(mut o)) => match o.remove("tiles") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(t @ serde_json::Value::Object(_)) => Ok(Some(t)),
            Some(_) => Err("tiles must be an object"),
        },
        _ => Err("the body must be a JSON object"),
    }
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_request_body_may_carry_a_tiles_object_only() {
        let t = serde_json::json!({"maxzoom": 6, "bounds": [[5.5, 45.5, 11, 48]]});
        let body = serde_json::json!({ "tiles": t }).to_string();
        assert_eq!(super::tiles_of_body(body.as_bytes()), Ok(Some(t)));
        for none in ["", " \n", "{}", r#"{"tiles": null}"#, r#"{"other": 1}"#] {
            assert_eq!(super::tiles_of_body(none.as_bytes()), Ok(None), "{none:?}");
        }
        for bad in ["not json", "[1]", "7", r#"{"tiles": [1]}"#, r#"{"tiles": "z<6"}"#] {
            assert!(super::tiles_of_body(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tiles_are_served_for_valid_coordinates_only() {
        let ok = super::tile_response("/tiles/0/0/0.pbf");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["content-type"], "application/vnd.mapbox-vector-tile");
        for bad in [
            "/tiles/0/1/0.pbf",
            "/tiles/2/0/4.pbf",
            "/tiles/23/0/0.pbf",
            "/tiles/1/0/0.png",
            "/x",
        ] {
            assert_eq!(super::tile_response(bad).status(), 404, "{bad}");
        }
    }
}
