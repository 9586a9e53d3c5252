//! Tracing setup: JSON lines to stderr, filter from `RUST_LOG`, else the
//! command's level (`info` for `serve` and `demo`, `warn` for operator
//! commands; `-v` raises it). Colour only when stderr is a terminal.
//! Access-log lines have target `access`. Nothing logs a token, key or
//! secret: the request path logs only paths, never queries or
//! `Authorization`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `json`: JSON lines, else compact text; `level`: the filter when
/// `RUST_LOG` is unset or invalid.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().flatten_event(true).try_init()
    } else {
        b.compact().try_init()
    };
}
