//! The network toolkit, below everything that talks to a peer: rustls
//! configs (the proxy listener's, and the client one with the system roots
//! and an optional extra CA), the https-or-http connector and the small
//! shared client for the gateway's own outbound calls (JWKS), and the
//! trusted-proxy networks with the client address behind them; and the
//! per-core workers' plumbing (which worker a thread is, `SO_REUSEPORT`
//! listeners). It knows nothing of the configuration, the routes or the
//! requests it serves: callers hand it paths, timeouts and header maps.

pub mod client;
pub mod tls;
pub mod trusted;
pub mod workers;
