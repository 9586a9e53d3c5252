//! The `tilegate` binary: parse the command line, start logging, run.
//! Exit codes: 0 ok, 1 failure, 64 bad usage or config.

fn main() -> std::process::ExitCode {
    tilegate::cli::main()
}
