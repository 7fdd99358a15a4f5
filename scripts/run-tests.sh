#!/usr/bin/env bash
# `make test` once `build` is built: the unit tests (ctest), the end-to-end suite (on the store backends
# E2E_BACKEND names), and the fuzz smoke (scripts/run-fuzz.sh) with its clang build, all three at once. The
# fuzz side (a `-j2` build, then two targets at a time, all at a lower priority) and ctest run beside the
# e2e suite, whose servers spend much of their time waiting; the e2e suite runs its tests in parallel
# (pytest-xdist, E2E_JOBS workers; tests that share fixed host addresses run one after another, see
# tests/e2e/conftest.py). Each phase prints how long it took; the exit status is non-zero if any phase
# failed, and every phase runs to the end either way.
#   scripts/run-tests.sh BUILD_DIR FUZZ_DIR FUZZ_RUNS
# Environment: E2E_JOBS (default 4), E2E_BACKEND (sqlite, postgres or both; default both, as `make test` sets
# it), E2E_ARGS (more pytest arguments), FUZZ=0 to leave the fuzz side out.
set -uo pipefail
build_dir=$(realpath "${1:-build}")
fuzz_dir=${2:-build-fuzz}
fuzz_runs=${3:-20000}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

start=$(date +%s)
phase() {  # phase NAME COMMAND...: runs it, prints its time and result, returns its status
    local name=$1 t0 rc
    shift
    t0=$(date +%s)
    "$@"
    rc=$?
    echo "phase $name: $(($(date +%s) - t0)) s, $([ $rc -eq 0 ] && echo passed || echo "FAILED ($rc)")"
    return $rc
}

fuzz_pid=
if [ "${FUZZ:-1}" != 0 ]; then
    fuzz_log=$(mktemp)
    # At a lower priority: it takes the CPU time ctest and the e2e servers leave idle, and never slows them
    # down (a loaded e2e server is slower to answer, not wrong, but slower is what CI waits for). Two
    # compilers, so that both cores' idle time is taken: with one, the fuzz side (1,064 s of build, then
    # 90 s of smoke runs) ended last, after the e2e suite (1,066 s).
    (
        phase fuzz-build nice -n 10 make --no-print-directory fuzz-build FUZZ_DIR="$fuzz_dir" FUZZ_BUILD_FLAGS=-j2 &&
        phase fuzz-smoke nice -n 10 bash scripts/run-fuzz.sh "$fuzz_dir" "$fuzz_runs"
    ) >"$fuzz_log" 2>&1 &
    fuzz_pid=$!
fi

status=0
# ctest beside the e2e suite, not before it: both mostly wait (ctest on process start-up and fsyncs, the e2e
# servers on sockets), and ctest's output is held back until the e2e suite is done, so the two never mix.
ctest_log=$(mktemp)
phase ctest ctest --test-dir "$build_dir" --output-on-failure -j2 >"$ctest_log" 2>&1 &
ctest_pid=$!
# shellcheck disable=SC2086
phase "e2e(${E2E_BACKEND:-both})" env MAGPIE_BUILD_DIR="$build_dir" /usr/bin/python3 -m pytest -q tests/e2e \
    --backend="${E2E_BACKEND:-both}" -n "${E2E_JOBS:-4}" --dist loadgroup -rfE ${E2E_ARGS:-} || status=1
ctest_rc=0
wait "$ctest_pid" || ctest_rc=$?
# The whole log on failure, else its summary (the percentage line, the skipped tests and the phase line).
if [ $ctest_rc -ne 0 ]; then cat "$ctest_log"; status=1; else sed -n '/tests passed/,$p' "$ctest_log"; fi
rm -f "$ctest_log"

if [ -n "$fuzz_pid" ]; then
    fuzz_rc=0
    wait "$fuzz_pid" || fuzz_rc=$?
    # The whole log on failure (the failing target's tail is in it), else its summary lines.
    if [ $fuzz_rc -ne 0 ]; then cat "$fuzz_log"; status=1; else grep -E '^(phase|fuzz: [0-9]+ targets)' "$fuzz_log"; fi
    rm -f "$fuzz_log"
fi
echo "make test: $(($(date +%s) - start)) s after the build, $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
