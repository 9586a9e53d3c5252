#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) and prints libFuzzer's
# final stats. Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable
# toolchain is enough with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags).
# The working corpus grows in fuzz/corpus-full/ (not committed), seeded
# from the small kept corpus in fuzz/corpus/. A crash lands in
# fuzz/artifacts/<target>/: copy it to fuzz/corpus/<target>/regression-<name>
# so tests/fuzz_corpus.rs replays it in CI, then fix the bug.
#   bash fuzz/run.sh                 # all targets, 300 s each, one at a time
#   SECONDS_EACH=60 bash fuzz/run.sh path token
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-300}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(path token config token_request forwarding)
# No sanitizer: the code under test is safe Rust; the hunt is for panics
# and broken invariants. Debug assertions on, so overflows panic.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -a
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-full/$t"
    echo "== $t (${secs}s)"
    cargo fuzz run -s none -a "$t" "$PWD/fuzz/corpus-full/$t" "$PWD/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=8192 -print_final_stats=1 2>&1 |
        grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))|panicked|SUMMARY'
done
