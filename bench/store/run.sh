#!/bin/bash
# Builds the store benchmark optimized (no sanitizers) in its own build dir and runs it on one mailbox of
# N messages (default 100,000) and on issue 11's 51,000, then once more with the whole STORE in one
# transaction (the old shape), to compare how long a delivery made during the STORE waits.
# Usage: bench/store/run.sh [messages]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${MAGPIE_BENCH_BUILD:-$root/build-bench}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAGPIE_WERROR=OFF >/dev/null
fi
ninja -C "$build" -j2 store_bench
n="${1:-100000}"
"$build/bench/store_bench" "$n"
echo
"$build/bench/store_bench" 51000
echo
"$build/bench/store_bench" "$n" --chunk $((n + 1))
