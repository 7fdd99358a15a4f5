#!/usr/bin/env bash
# Runs every built fuzz target for a fixed number of runs, starting from its seed corpus in
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
count=0
for target in "$fuzz_dir"/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  mkdir -p "$scratch/$name"
  [ -d "$root/tests/fuzz/corpus/$name" ] && cp -r "$root/tests/fuzz/corpus/$name/." "$scratch/$name/"
  echo "fuzz: $name, $runs runs"
  "$target" -runs="$runs" -seed="${FUZZ_SEED:-1}" -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 \
    -artifact_prefix="$scratch/" "$scratch/$name" 2>"$scratch/$name.log" || {
      tail -40 "$scratch/$name.log"; echo "fuzz: $name FAILED"; exit 1; }
  count=$((count + 1))
done
echo "fuzz: $count targets passed"
