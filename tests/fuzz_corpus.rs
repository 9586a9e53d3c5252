//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`, seeds plus every
//! input that once found a bug, named `regression-*`) through the fuzz
//! targets' entry points, so CI re-checks them without a fuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{} broke an invariant", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn path_corpus() {
    replay("path", tilegate::fuzzing::path);
}

#[test]
fn token_corpus() {
    replay("token", tilegate::fuzzing::token);
}

#[test]
fn config_corpus() {
    replay("config", tilegate::fuzzing::config_text);
}

#[test]
fn token_request_corpus() {
    replay("token_request", tilegate::fuzzing::token_request);
}

#[test]
fn forwarding_corpus() {
    replay("forwarding", tilegate::fuzzing::forwarding);
}
