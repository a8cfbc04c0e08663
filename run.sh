#!/usr/bin/env bash
# Quick-start entry point: creates ./.venv on first use, installs the package
# with its test extras, then runs the main job or the test suite.
#   ./run.sh main   - the main job (quick 2-D reproduction, results in ./results)
#   ./run.sh test   - the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.tfc_perception-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
# oneDNN kernels on every x86 CPU, not only AVX512-VNNI ones (as
# tfc_perception/_onednn.py does at import); an explicit value is kept.
export TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-1}
export MPLBACKEND=Agg
cmd=${1:-}
shift || true
case "$cmd" in
  main) exec .venv/bin/python bin/reproduce all --config quick --output results "$@" ;;
  test) exec .venv/bin/python -m pytest -q -ra --durations=15 "$@" ;;
  *) echo "usage: ./run.sh main|test [extra args]" >&2; exit 2 ;;
esac
