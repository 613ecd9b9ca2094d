#!/usr/bin/env bash
# Measures deoss and s3s-fs back to back on this machine with deoss-bench, and prints the tables
# that BENCHMARKS.md records. Needs a release build of both binaries:
#   cargo build --release -p deoss-gateway -p deoss-bench
#   cargo install --locked --features binary s3s-fs@0.14.1
# Usage: gateway/bench/run-comparison.sh [RUNS]   (default 3; each server gets a fresh data dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
target="${CARGO_TARGET_DIR:-target}"
bench="$target/release/deoss-bench"
deoss="$target/release/deoss"
s3sfs="$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")"
work=$(mktemp -d /tmp/deoss-compare.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ak=benchak; sk=benchsecretbenchsecret

wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }

suite() { # endpoint pid label
    local b=("$bench" --endpoint "$1" --access-key "$ak" --secret-key "$sk" --server-pid "$2" --runs "$runs")
    echo "### $3"
    "${b[@]}" large-put --size 1GiB | tail -n 1
    "${b[@]}" large-put --size 1GiB --streams 4 | tail -n 1
    "${b[@]}" large-put --size 1GiB --multipart | tail -n 1
    "${b[@]}" large-get --size 1GiB | tail -n 1
    "${b[@]}" range-get --object-size 1GiB --range-size 1MiB --count 500 | tail -n 1
    "${b[@]}" small --size 4KiB --count 2000 --concurrency 64 | tail -n 3
}

mkdir -p "$work/s3s-fs"
"$s3sfs" --host 127.0.0.1 --port 9014 --access-key "$ak" --secret-key "$sk" "$work/s3s-fs" >/dev/null 2>&1 &
pid=$!; wait_port 9014
suite http://127.0.0.1:9014 "$pid" "s3s-fs 0.14.1"
kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$work/s3s-fs"

DEOSS_ROOT_ACCESS_KEY=$ak DEOSS_ROOT_SECRET_KEY=$sk DEOSS_LOG=warn \
    "$deoss" serve --listen 127.0.0.1:9015 --data-dir "$work/deoss" >/dev/null 2>&1 &
pid=$!; wait_port 9015
suite http://127.0.0.1:9015 "$pid" "deoss (cess 4+8, encrypted)"
base=("$bench" --endpoint http://127.0.0.1:9015 --access-key "$ak" --secret-key "$sk" --server-pid "$pid")
b=("${base[@]}" --runs "$runs")
# Degraded: every data fragment of every segment lost (cess keeps 4 data + 8 parity; wiping the
# four stores that hold data fragments is not possible for all segments at once, so wipe 8 stores:
# each segment then has at most 4 fragments left, mostly parity).
"${b[@]}" large-get --size 1GiB --bucket degraded >/dev/null
for s in 00 01 02 03 04 05 06 07; do find "$work/deoss/stores/$s" -mindepth 2 -type f -delete; done
# Measured like the healthy GET (no client-side checking, which costs the client ~0.5 CPU-s/GB on
# a machine it shares with the server), then once more with every byte checked.
"${b[@]}" --bucket degraded degraded-get --size 1GiB --label "8 of 12 stores lost" | tail -n 1
"${base[@]}" --bucket degraded --runs 1 --verify degraded-get --size 1GiB --label "8 of 12 stores lost, every byte checked" | tail -n 1
kill "$pid"; wait "$pid" 2>/dev/null || true
