//! tilegate: a reverse-proxy authorization gateway for map-tile and
//! streaming-data backends.
//!
//! The request path (composed in `server::stack`):
//!
//! ```text
//! accept (server) → telemetry (access log, metrics)
//!   → normalise path (routing::normalize)
//!   → inline token endpoint? (issue)            → response
//!   → CORS preflight? (routing::Cors)            → response
//!   → route match (routing::RouteTable)
//!   → token: extract (auth::extract) → verify through the moka cache
//!     (auth::Verifier) → revocation set → route rule (auth::check_rule)
//!   → forward (proxy): headers rewritten, bodies streamed both ways
//! ```
//!
//! Errors are one enum per layer, mapped to HTTP in `http.rs`.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub(crate) mod admin;
pub(crate) mod app;
pub mod auth;
pub(crate) mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod credentials;
pub(crate) mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod grants;
pub(crate) mod http;
pub(crate) mod issue;
pub(crate) mod metrics;
pub(crate) mod net;
pub(crate) mod proxy;
pub mod routing;
pub(crate) mod server;
pub(crate) mod state;
pub mod store;
pub(crate) mod telemetry;
