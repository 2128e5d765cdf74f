#!/usr/bin/env bash
# Runs Lode's fuzz targets under libFuzzer (cargo-fuzz).
#
#   scripts/fuzz.sh [TARGET|all|core|node|smoke] [SECONDS]
#
# TARGET is one of the targets below; `core` and `node` run a group,
# `all` both, `smoke` is what scripts/test.sh runs: the core targets, and
# the node targets only when their fuzz build already exists (or
# LODE_FUZZ_NODE=1). SECONDS is per target (default 20). Everything runs
# under `nice -n 19`.
#
# New inputs go to ~/.cache/lode/fuzz-corpus/<target> (the committed seeds
# in fuzz/corpus/<target> are read, never written); a crash is written to
# ~/.cache/lode/fuzz-artifacts/<target>/ and the script fails, printing how
# to turn it into a regression input. `scripts/fuzz.sh minimize TARGET`
# merges the cache corpus into a minimal fuzz/corpus/<target>.
#
# Toolchain: cargo-fuzz needs nightly rustc flags. With a nightly toolchain
# installed it is used (`cargo +nightly fuzz`); otherwise the stable one is
# run with RUSTC_BOOTSTRAP=1, which lets stable rustc accept them. Without
# cargo-fuzz the script prints "fuzz: skipped (...)" and succeeds, unless
# LODE_FUZZ_INSTALL=1 asks it to install cargo-fuzz (about 2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

CORE_TARGETS=(decoders difficulty validation)
# The node targets need their cargo-fuzz package (fuzz/node) and the
# test-support hooks in lode-node.
NODE_TARGETS=()
if [ -f fuzz/node/Cargo.toml ]; then
  NODE_TARGETS=(p2p_decoders rpc chain_model p2p_service)
fi
what="${1:-all}"
seconds="${2:-20}"
cache="${LODE_FUZZ_CACHE:-$HOME/.cache/lode}"
# The fuzz build's own target folder: sanitizer-coverage flags differ from
# the workspace build, so sharing it would rebuild everything twice.
target_dir="$cache/fuzz-target"

skip() {
  echo "fuzz: skipped ($1)"
  exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
if ! cargo fuzz --version >/dev/null 2>&1; then
  # Opt-in: the install takes about 2 minutes (measured), which a clean CI
  # run cannot spare on top of the workspace build.
  if [ -n "${LODE_FUZZ_INSTALL:-}" ]; then
    nice -n 19 cargo install cargo-fuzz --locked
  else
    skip "cargo-fuzz is not installed: cargo install cargo-fuzz --locked, or LODE_FUZZ_INSTALL=1"
  fi
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi

fuzz_dir_of() {
  case " ${NODE_TARGETS[*]} " in
    *" $1 "*) echo fuzz/node ;;
    *) echo fuzz ;;
  esac
}

built() {
  [ -x "$target_dir/x86_64-unknown-linux-gnu/release/$1" ]
}

rocksdb_version() {
  grep -A1 '^name = "librocksdb-sys"$' "$1" 2>/dev/null | sed -n 's/^version = "\(.*\)"$/\1/p'
}

# The node build links the RocksDB library the workspace build already
# compiled (same librocksdb-sys version in both lock files) instead of
# compiling its C++ again under the fuzz flags: RocksDB is not what is
# fuzzed, and its compile is most of a cold node build (measured: about
# 60 of its ~350 objects in 30 min, niced on the loaded machine).
reuse_rocksdb() {
  local ws_target="${CARGO_TARGET_DIR:-$cache/target}" lib
  lib="$(ls -t "$ws_target"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)"
  local want have
  want="$(rocksdb_version fuzz/node/Cargo.lock)"
  have="$(rocksdb_version Cargo.lock)"
  if [ -n "$lib" ] && [ -n "$want" ] && [ "$want" = "$have" ]; then
    mkdir -p "$cache/fuzz-rocksdb"
    cmp -s "$lib" "$cache/fuzz-rocksdb/librocksdb.a" || cp "$lib" "$cache/fuzz-rocksdb/librocksdb.a"
    export ROCKSDB_LIB_DIR="$cache/fuzz-rocksdb" ROCKSDB_STATIC=1
    echo "fuzz: linking the workspace build's RocksDB ($lib)"
  fi
}

build() {
  local dir="$1"
  echo "== fuzz build ($dir)"
  [ "$dir" = fuzz/node ] && reuse_rocksdb
  local start=$SECONDS
  nice -n 19 cargo "${toolchain[@]}" fuzz build -O -s none --target-dir "$target_dir" --fuzz-dir "$dir"
  echo "fuzz: build of $dir took $((SECONDS - start)) s"
}

run_target() {
  local t="$1" dir
  dir="$(fuzz_dir_of "$t")"
  local work="$cache/fuzz-corpus/$t" artifacts="$cache/fuzz-artifacts/$t/"
  # A smoke run starts from the committed corpus only: libFuzzer replays
  # every input of its corpus directories before -max_total_time counts
  # (observed),
  # and the grown corpus of a long run (265 inputs of p2p_service at about
  # 0.2 runs/s) made a "20 s" smoke step take 20 minutes.
  if [ "$what" = smoke ]; then
    work="$(mktemp -d)"
  fi
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
  echo "== fuzz $t (${seconds} s)"
  local log="$cache/fuzz-logs/$t.log"
  mkdir -p "$(dirname "$log")"
  local status=0
  # -rss_limit_mb bounds a target's memory; -timeout flags a hang.
  nice -n 19 cargo "${toolchain[@]}" fuzz run -O -s none --target-dir "$target_dir" --fuzz-dir "$dir" "$t" \
    "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
    -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
  if [ "$what" = smoke ]; then
    rm -rf "$work"
  fi
  local execs
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (log $log). Keep the input as a regression:" >&2
    echo "  cp $artifacts<crash-file> fuzz/regressions/$t/<name> and add a named test in fuzz/targets/tests/regressions.rs" >&2
    return 1
  fi
  echo "fuzz: $t ok, ${execs:-?} runs in ${seconds} s"
}

case "$what" in
  minimize)
    t="${2:?minimize needs a target}"
    dir="$(fuzz_dir_of "$t")"
    tmp="$(mktemp -d)"
    nice -n 19 cargo "${toolchain[@]}" fuzz cmin -O -s none --target-dir "$target_dir" --fuzz-dir "$dir" "$t" "$tmp" \
      -- "fuzz/corpus/$t" "$cache/fuzz-corpus/$t"
    rm -rf "fuzz/corpus/$t" && mv "$tmp" "fuzz/corpus/$t"
    echo "fuzz: fuzz/corpus/$t minimised to $(ls "fuzz/corpus/$t" | wc -l) files"
    exit 0
    ;;
  core) targets=("${CORE_TARGETS[@]}") ;;
  node) targets=("${NODE_TARGETS[@]}") ;;
  all) targets=("${CORE_TARGETS[@]}" "${NODE_TARGETS[@]}") ;;
  smoke)
    targets=("${CORE_TARGETS[@]}")
    if [ "${#NODE_TARGETS[@]}" -eq 0 ]; then
      echo "fuzz: node targets skipped (fuzz/node is not in this tree)"
    elif [ -n "${LODE_FUZZ_NODE:-}" ] || built "${NODE_TARGETS[0]}"; then
      targets+=("${NODE_TARGETS[@]}")
    else
      echo "fuzz: node targets skipped (no fuzz build of fuzz/node yet; LODE_FUZZ_NODE=1 builds it)"
    fi
    ;;
  *) targets=("$what") ;;
esac

need_core=0 need_node=0
for t in "${targets[@]}"; do
  case "$(fuzz_dir_of "$t")" in
    fuzz/node) need_node=1 ;;
    *) case " ${CORE_TARGETS[*]} " in *" $t "*) need_core=1 ;; *) echo "unknown target $t" >&2; exit 2 ;; esac ;;
  esac
done
[ "$need_core" = 1 ] && build fuzz
[ "$need_node" = 1 ] && build fuzz/node
failed=0
for t in "${targets[@]}"; do
  run_target "$t" || failed=1
done
exit "$failed"
