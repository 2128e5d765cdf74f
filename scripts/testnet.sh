#!/usr/bin/env bash
# A local devnet: three nodes on 127.0.0.1 (two mining) until Ctrl-C.
# Options are passed to lode-testnet: --nodes N, --miners M, --dir DIR,
# --base-port P.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
. ./scripts/env.sh
cargo build --release --workspace --bins
release="$(cd "$CARGO_TARGET_DIR/release" && pwd)"
# Put the binaries on PATH (~/.local/bin is on it in most distributions'
# default profiles); lode-testnet prints full paths when they are not.
links="$HOME/.local/bin"
mkdir -p "$links"
for b in lode-node lode-wallet lode-testnet; do
    ln -sf "$release/$b" "$links/$b"
done
found="$(command -v lode-wallet 2>/dev/null || true)"
if [ -n "$found" ] && [ "$(readlink -f "$found")" = "$(readlink -f "$release/lode-wallet")" ]; then
    echo "Linked lode-node, lode-wallet and lode-testnet into $links (on your PATH)."
else
    echo "Linked lode-node, lode-wallet and lode-testnet into $links (not on your PATH: the commands below use full paths)."
fi
exec "$release/lode-testnet" "$@"
