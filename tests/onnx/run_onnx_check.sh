#!/usr/bin/env bash
# ONNX export check: kiln_onnx_driver exports the check's models and writes kiln's predictions;
# check_onnx.py runs them in onnxruntime (from the Keras parity venv, tests/parity/venv.sh) and
# compares.
#
# Usage: run_onnx_check.sh --driver PATH [--work DIR] [--venv DIR]
#   --work  scratch directory (default: the driver's directory)
#   --venv  the virtual environment (default: WORK/../parity/parity-venv, the parity check's)
# Exit status: 0 every model agrees; 1 one differs or fails the checker, or the packages cannot be
# installed although the index is reachable; 77 skipped without a reachable package index
# (KILN_PARITY_REQUIRED=1 turns that into 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

driver="" work="" venv=""
while (($#)); do
  case "$1" in
    --driver) driver="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "onnx: unknown argument '$1'" >&2; exit 1 ;;
  esac
done
[ -x "$driver" ] || { echo "onnx: --driver must name the built kiln_onnx_driver (got '$driver')" >&2; exit 1; }
work="${work:-$(dirname "$driver")}"
venv="${venv:-$work/../parity/parity-venv}"

source "$here/../parity/venv.sh"
kiln_venv onnx "$venv"
py="$venv/bin/python"
"$py" -c "import onnx, onnxruntime" 2>/dev/null || {
  echo "onnx: FAIL: $venv has the pinned packages but cannot import onnx/onnxruntime" >&2
  exit 1
}

out="$work/onnx-cases"
rm -rf "$out"
mkdir -p "$out"
"$driver" "$out"
exec "$py" "$here/check_onnx.py" "$out"
