//! The `tilegate` binary: parse the command line, start logging, run.
//! Exit codes: 0 ok, 1 failure, 64 bad usage or config.

/// mimalloc instead of glibc malloc: the request path allocates and frees
/// small objects across tasks, where glibc's arenas cost ~12 % of the
/// gateway's user CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tilegate::cli::main()
}
