//! tilegate: a reverse-proxy authorization gateway for map-tile and
//! streaming-data backends.
//!
//! The request path is composed in `server::stack` as named phases
//! (docs/architecture.md, "The request path"): normalise the path, inline
//! token endpoint, host, CORS preflight, route match, authorize, body cap,
//! target rewrite, forward. Errors are one enum per layer, turned into
//! responses in `server::rescue`.

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
