#!/usr/bin/env bash
# The long reliability run (issue 6): >= 10^4 property-based cases per public entry point
# and per pynn._core kernel family, 10^4 damaged or crafted model files, and the memory tests
# at 10^5 steps on every backend with 200 MB of data. Each pytest prints its cases per entry
# point and fails if any fell short of PYNN_FUZZ_EXAMPLES.
#
# Two processes, one per core; run in the environment .ci/run leaves active.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export CI="${CI:-true}"
export PYNN_FUZZ_EXAMPLES="${PYNN_FUZZ_EXAMPLES:-10000}" PYNN_MEMORY_STEPS="${PYNN_MEMORY_STEPS:-100000}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
start=$SECONDS

echo "::: fuzz: PYNN_FUZZ_EXAMPLES=$PYNN_FUZZ_EXAMPLES, PYNN_MEMORY_STEPS=$PYNN_MEMORY_STEPS"
pytest -q -p no:cacheprovider tests/test_fuzz.py tests/test_fuzz_more.py > "$logs/public.txt" 2>&1 &
public=$!
pytest -q -p no:cacheprovider tests/test_fuzz_core.py tests/test_persistence.py tests/test_memory.py \
    > "$logs/core.txt" 2>&1 &
core=$!
status=0
wait "$public" || status=1
wait "$core" || status=1
for log in "$logs/public.txt" "$logs/core.txt"; do
    echo "--- $(basename "$log")"
    # the counts and the verdict (the whole log when something failed)
    if [ "$status" -ne 0 ]; then cat "$log"; else sed -n '/pynn fuzz: cases run/,$p' "$log"; fi
done
echo "::: fuzz: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
exit "$status"
