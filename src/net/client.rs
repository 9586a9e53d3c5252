//! Outbound HTTP: the https-or-http connector shared by the upstream
//! transports and the gateway's own calls, and the small client for the
//! latter (JWKS fetches).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::tls::client_tls;

/// hyper-util's pooled client over [`https_connector`].
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// Wrap `http` (its timeouts and socket options set by the caller) so that
/// `https` URIs go through rustls with `tls`, and `http` ones stay plain:
/// HTTP/1.1, and HTTP/2 too when `http2` (chosen by ALPN).
pub fn https_connector(http: HttpConnector, tls: rustls::ClientConfig, http2: bool) -> HttpsConnector<HttpConnector> {
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    if http2 {
        b.enable_http2().wrap_connector(http)
    } else {
        b.wrap_connector(http)
    }
}

/// A small shared client for the gateway's own outbound calls (JWKS).
pub fn plain_client() -> &'static HttpsClient<Empty<Bytes>> {
    static C: OnceLock<HttpsClient<Empty<Bytes>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        let tls = client_tls(None).unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        Client::builder(TokioExecutor::new()).build(https_connector(http, tls, false))
    })
}
