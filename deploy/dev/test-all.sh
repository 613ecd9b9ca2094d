#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test in the workspace (unit tests, the
# catalogue suite on SQLite and PostgreSQL, end-to-end tests that drive the real `deoss` binary
# with aws-sdk-s3 and the aws CLI).
#
# PostgreSQL: DEOSS_TEST_POSTGRES_URL names a server to use; otherwise a throwaway server is
# started from the installed PostgreSQL binaries (Debian's `postgresql` package) and removed
# afterwards. The real CESS runtime runs under Chopsticks (deploy/chain/install-chopsticks.sh,
# installed into a cache outside the clone when npm is available). Builds go to CARGO_TARGET_DIR
# (default: a cache outside the clone, so runs reuse it).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deoss/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v aws >/dev/null 2>&1; then
    echo "== installing the aws CLI (used by the end-to-end tests)"
    python3 -m pip install --quiet --user awscli
    export PATH="$HOME/.local/bin:$PATH"
fi

if [ -z "${DEOSS_CHOPSTICKS_DIR:-}" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "== Chopsticks (the real CESS runtime, for the chain tests)"
        DEOSS_CHOPSTICKS_DIR="$(DEOSS_CHOPSTICKS_DIR="${DEOSS_CHOPSTICKS_CACHE:-$HOME/.cache/deoss/chopsticks}" \
            deploy/chain/install-chopsticks.sh | tail -n 1)"
        export DEOSS_CHOPSTICKS_DIR
    else
        echo "== npm is not installed: the tests against the CESS runtime will be skipped"
    fi
fi

pg_dir=""
cleanup() {
    if [ -n "$pg_dir" ]; then
        run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap cleanup EXIT

run_pg() {
    # PostgreSQL refuses to run as root.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -z "${DEOSS_TEST_POSTGRES_URL:-}" ]; then
    # The newest PostgreSQL whose server is installed (a leftover directory of an older
    # version's client has no initdb).
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    pg_bin=${initdb%/initdb}
    if [ -n "$initdb" ] && [ -x "$initdb" ]; then
        pg_dir=$(mktemp -d /tmp/deoss-pg.XXXXXX)
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
        run_pg "$pg_bin/initdb" -D "$pg_dir/data" -U deoss --auth=trust >/dev/null
        run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
            -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
        export DEOSS_TEST_POSTGRES_URL="postgres://deoss@127.0.0.1:$port/postgres"
        echo "== throwaway PostgreSQL on port $port"
    else
        echo "== PostgreSQL is not installed: the PostgreSQL catalogue suite will be skipped"
    fi
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Tests that cannot run here (a real component missing) say so in this file; they fail instead
# under CI=true.
export DEOSS_SKIP_LOG="${DEOSS_SKIP_LOG:-$(mktemp /tmp/deoss-skipped.XXXXXX)}"
: >"$DEOSS_SKIP_LOG"

echo "== cargo test"
status=0
cargo test --workspace || status=$?
if [ -s "$DEOSS_SKIP_LOG" ]; then
    echo "== SKIPPED (a real component was missing):"
    sort -u "$DEOSS_SKIP_LOG" | sed 's/^/   /'
fi
exit "$status"
