# Sourced by the scripts: one target folder outside the clone, shared by
# tests, binaries and benches (all built with --release), so RocksDB's C++
# compiles once and survives between clones and CI runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
