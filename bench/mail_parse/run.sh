#!/bin/bash
# Builds the parse benchmark optimized (no sanitizers) in its own build dir and runs it: Magpie and GMime
# side by side on the same messages; the ratio is the result. Usage: bench/mail_parse/run.sh [seconds]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${MAGPIE_BENCH_BUILD:-$root/build-bench}"
/usr/bin/python3 "$root/tests/data/mail/generate.py" >/dev/null
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAGPIE_WERROR=OFF >/dev/null
fi
ninja -C "$build" -j2 mail_parse_bench
"$build/bench/mail_parse_bench" "${1:-3}"
