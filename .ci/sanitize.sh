#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer: build the compiled core with
# -DPYNN_SANITIZE=ON into a scratch directory and run the test suite, then a longer fuzz of
# pynn._core, against it; then ThreadSanitizer over the thread team. Any sanitizer report fails
# the step.
#
# Needs: the active environment with pynn's test dependencies (as .ci/run leaves it), gcc,
# and PyPI for pip's isolated build (scikit-build-core, pybind11, scipy-openblas32).
#
# - pip builds from the repo's files in its isolated build environment; --target and a
#   scratch build dir keep the result away from the active environment and from build/.
# - Python is not instrumented, so libasan must be the first library loaded (LD_PRELOAD),
#   and libstdc++ with it: otherwise ASan's __cxa_throw interceptor finds no real function
#   and the first C++ exception (pybind11's ValueError) aborts.
# - detect_leaks=0: CPython keeps interned objects and module state alive until exit by
#   design, and LeakSanitizer would report those (not pynn's) at every exit.
# - allocator_may_return_null=1: tests that ask for impossible allocations expect NumPy's
#   MemoryError; ASan would otherwise abort on them.
# - the tests marked rss (tests/test_memory.py and the other peak-memory tests) are left out:
#   they measure resident memory, which ASan's shadow memory and quarantine change by design.
#   Numba runs under ASan (its JIT code is not instrumented, its allocations are checked).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CI="${CI:-true}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
start=$SECONDS

echo "::: sanitize: build pynn._core with -fsanitize=address,undefined"
SKBUILD_CMAKE_DEFINE="PYNN_WERROR=ON;PYNN_SANITIZE=ON" SKBUILD_BUILD_DIR="$scratch/build" \
    python -m pip install --quiet --no-deps --target "$scratch/site" "$repo"
# the BLAS next to it, as in site-packages, so that the install RUNPATH resolves (the same version)
blas="$(python -c "import importlib.metadata as m; print(m.version('scipy-openblas32'))")"
python -m pip install --quiet --no-deps --target "$scratch/site" "scipy-openblas32==$blas"
core="$(ls "$scratch"/site/pynn/_core*.so)"
deps="$(ldd "$core")"  # (not piped into grep -q: with pipefail, ldd's SIGPIPE would fail the test)
grep -q libasan <<<"$deps" && grep -q libubsan <<<"$deps" || { echo "$core lacks ASan/UBSan:"; echo "$deps"; exit 1; }

preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
logs="$scratch/sanitizer"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:log_path=$logs"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs"
# Run from the scratch directory, so that the checkout's own pynn/ is not on sys.path.
run() { (cd "$scratch" && LD_PRELOAD="$preload" PYTHONPATH="$scratch/site" "$@"); }

# The instruments first: pynn._core is the sanitized one, and ASan catches a heap overflow.
run python -c "import sys, pynn.backends.cpp, pynn._core as c; assert c.__file__.startswith(sys.argv[1]), c.__file__" "$scratch/site"
if run python -c "import ctypes, numpy as np; a = np.ones(8); ctypes.string_at(a.ctypes.data, 72)" 2>/dev/null; then
    echo "AddressSanitizer did not catch a heap-buffer-overflow: it is not active"; exit 1
fi
rm -f "$logs".*

echo "::: sanitize: the test suite (without the resident-memory tests, marked rss) under ASan + UBSan"
run pytest -q -p no:cacheprovider --rootdir "$repo" -c "$repo/pyproject.toml" "$repo/tests" -m "not rss"
echo "::: sanitize: pynn._core fuzzed, 2000 cases per entry point, under ASan + UBSan"
run env PYNN_FUZZ_EXAMPLES=2000 pytest -q -p no:cacheprovider --rootdir "$repo" -c "$repo/pyproject.toml" \
    "$repo/tests/test_fuzz_core.py" "$repo/tests/test_concurrency.py"

echo "::: sanitize: the thread team and split steps under ThreadSanitizer, and no allocation per split step (tests/cpp/team_tsan.cpp)"
# A C++ driver, since TSan cannot start inside an uninstrumented Python. The kernels' AVX2 clones
# are chosen by ifunc resolvers that run before TSan is initialised (instrumented, they crash),
# so the kernels are built plain and only the code that runs threads is instrumented.
inc="$(python -c 'import scipy_openblas32 as s; print(s.get_include_dir())')"
lib="$(python -c 'import scipy_openblas32 as s; print(s.get_lib_dir())')"
flags=(-std=c++17 -O1 -g -fno-math-errno -ffp-contract=off -I"$repo/csrc" -I"$inc")
objs=()
for f in dense activations losses optim dropout fastmath; do
    g++ "${flags[@]}" -c "$repo/csrc/$f.cpp" -o "$scratch/$f.o"
    objs+=("$scratch/$f.o")
done
g++ "${flags[@]}" -fsanitize=thread "$repo/tests/cpp/team_tsan.cpp" "$repo/csrc/model.cpp" "$repo/csrc/parallel.cpp" \
    "${objs[@]}" -L"$lib" -lscipy_openblas -Wl,-rpath,"$lib" -pthread -o "$scratch/team_tsan"
TSAN_OPTIONS="halt_on_error=1" "$scratch/team_tsan"

if ls "$logs".* >/dev/null 2>&1; then
    echo "sanitizer reports:"; cat "$logs".*; exit 1
fi
echo "::: sanitize: clean ($((SECONDS - start)) s)"
