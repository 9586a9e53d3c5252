//! Per-core workers' plumbing: which worker the current thread is (so that
//! per-worker state, such as upstream connections, is found without a
//! lookup), and the listening sockets they share a port through with
//! `SO_REUSEPORT`.

use std::cell::Cell;
use std::net::SocketAddr;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Mark the current thread as per-core worker `index` (from 1; 0 is every
/// other thread: the main runtime's, and all threads when the workers are
/// shared).
pub fn enter(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// The current thread's worker index: 1 to N on a per-core worker's
/// thread, 0 on any other.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// `n` sockets listening on `addr` with `SO_REUSEPORT`, so that the kernel
/// spreads new connections over them (by a hash of the connection's
/// addresses and ports). When `addr` has port 0 the first socket picks the
/// port and the others bind to the same one. The sockets are handed back
/// as std listeners (non-blocking), for each worker to register with its
/// own runtime. Call within a tokio runtime.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n {
        let socket = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restart may bind while
        // connections of the last run are in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(at)?;
        let l = socket.listen(1024)?;
        at = l.local_addr()?;
        out.push(l.into_std()?);
    }
    Ok(out)
}
