//! Tracing setup: JSON lines to stderr, filter from `RUST_LOG` (default
//! `info`). Access-log lines have target `access`. Nothing logs a token,
//! key or secret: the request path logs only paths, never queries or
//! `Authorization`.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().flatten_event(true).try_init()
    } else {
        b.compact().try_init()
    };
}
