#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build Lode: libclang
# (bindgen generates RocksDB's bindings with it), a C++ compiler and make
# (RocksDB's C++), and the rustfmt/clippy components. Safe to run
# repeatedly; does nothing when everything is present.
set -euo pipefail

# bindgen loads libclang through clang-sys, which accepts only files named
# libclang.so, libclang-N.so or those with a version suffix. libclang-cpp.so
# (a different library that many machines already have) does not count, so
# look for exactly those names where clang-sys looks for them.
have_libclang() {
  local dirs=()
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  dirs+=(/usr/lib/llvm-*/lib /usr/lib /usr/lib64 /usr/local/lib /usr/lib/*-linux-gnu)
  local d f
  for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*; do
      [ -e "$f" ] && return 0
    done
  done
  return 1
}

need=()
have_libclang || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
  if ! have_libclang; then
    echo "libclang.so is still missing after installing libclang-dev; set LIBCLANG_PATH" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
# Optional: headless Chromium for the explorer's browser test
# (tests/tests/explorer.rs skips that test without it). Set
# LODE_NO_CHROMIUM=1 to leave it out; a failed install never fails the run.
if [ -z "${LODE_NO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
  && ! command -v chromium-browser >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (optional, for the explorer's browser test)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo -n"
  if ! { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium; } >/dev/null 2>&1; then
    echo "chromium could not be installed; the explorer's browser test will be skipped"
  fi
fi
