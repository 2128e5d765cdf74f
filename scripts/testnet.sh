#!/usr/bin/env bash
# A local devnet: three nodes on 127.0.0.1 (two mining) until Ctrl-C.
# Options are passed to lode-testnet: --nodes N, --miners M, --dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
. ./scripts/env.sh
cargo build --release --workspace --bins
exec "$CARGO_TARGET_DIR/release/lode-testnet" "$@"
