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
