#!/usr/bin/env bash
# Runs every built fuzz target (FUZZ_JOBS at once) for a fixed number of runs, starting from its seed corpus in
# tests/fuzz/corpus/<target>/ (copied to a scratch dir so the checkout stays clean). Memory is capped so that
# "memory stays bounded" is a real check. The seed is fixed (FUZZ_SEED, default 1), but that alone does not make
# two runs alike: a build at another path (comparison tracing keys its tables by code address) and the order
# of equal-sized seeds can send the mutations elsewhere, so a run may reach an input an earlier one did not
# (a fresh clone in another directory found one in session 15). Each input that failed joins the corpus.
set -euo pipefail
fuzz_dir=${1:-build-fuzz}
runs=${2:-20000}
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
shopt -s nullglob
# One target: its corpus copied to the scratch dir, its log kept there; the log's tail on failure.
run_one() {
  local target=$1 name
  name=$(basename "$target")
  mkdir -p "$scratch/$name"
  [ -d "$root/tests/fuzz/corpus/$name" ] && cp -r "$root/tests/fuzz/corpus/$name/." "$scratch/$name/"
  "$target" -runs="$runs" -seed="${FUZZ_SEED:-1}" -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 \
    -artifact_prefix="$scratch/" "$scratch/$name" 2>"$scratch/$name.log" || {
      tail -40 "$scratch/$name.log"; echo "fuzz: $name FAILED"; return 1; }
  echo "fuzz: $name, $runs runs passed"
}
export -f run_one
export scratch root runs
targets=()
for target in "$fuzz_dir"/tests/fuzz/fuzz_*; do
  [ -x "$target" ] && targets+=("$target")
done
# FUZZ_JOBS targets at once (default 2, the cores CI has): each runs alone, one core, and make test's last
# phase was this one, run target after target.
if [ ${#targets[@]} -gt 0 ]; then
  printf '%s\0' "${targets[@]}" | xargs -0 -n 1 -P "${FUZZ_JOBS:-2}" bash -c 'run_one "$1"' _ || {
    echo "fuzz: a target FAILED (its log's tail is above)"; exit 1; }
fi
echo "fuzz: ${#targets[@]} targets passed"
