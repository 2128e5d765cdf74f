#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, integration and
# black-box tests, and the quick benchmark run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
. ./scripts/env.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo build --release --workspace --bins
cargo test --release --workspace -- --test-threads="${LODE_TEST_THREADS:-2}"
# The fuzz corpus and regressions were replayed by `cargo test` (lode-fuzz)
# above; here each target also runs under libFuzzer for a short while.
# scripts/fuzz.sh prints "fuzz: skipped (...)" when cargo-fuzz is missing
# (it is not installed here: see docs/testing.md for why and how).
echo "== fuzz (${LODE_FUZZ_SECONDS:-20} s per target)"
./scripts/fuzz.sh smoke "${LODE_FUZZ_SECONDS:-20}"
