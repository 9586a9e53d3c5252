//! The "plain hyper" row of the peer benchmark: a reverse proxy with
//! nothing of tilegate's logic, built on the same hyper, hyper-util, tokio
//! and allocator as the gateway, so the gap between it and tilegate is what
//! tilegate's own work costs, and the gap between it and nginx is hyper's.
//!
//! It serves connections with hyper-util's auto (HTTP/1 + HTTP/2) builder
//! as tilegate does, and forwards every request unchanged to one backend
//! through hyper-util's pooled client with `TCP_NODELAY` on both sides. No
//! routing, no token, no header pass, no limits, no timers.
//!
//!   cargo build --release --example plain_hyper
//!   TOKIO_WORKER_THREADS=1 target/release/examples/plain_hyper 127.0.0.1:18088 http://127.0.0.1:18080
//!
//! `benches/peers.sh` builds and runs it as the `hyper-plain` peer.

use std::net::SocketAddr;

use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: plain_hyper LISTEN_ADDR BACKEND_URL");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().expect("listen address");
    let backend: Uri = backend.parse().expect("backend URL");
    let authority: Authority = backend.authority().expect("backend host:port").clone();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(listen, authority));
}

async fn serve(listen: SocketAddr, authority: Authority) {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(http);
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                let authority = authority.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let mut uri = parts.uri.into_parts();
                    uri.scheme = Some(Scheme::HTTP);
                    uri.authority = Some(authority);
                    parts.uri = Uri::from_parts(uri).expect("uri");
                    parts.version = http::Version::HTTP_11;
                    client.request(Request::from_parts(parts, body)).await
                }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
