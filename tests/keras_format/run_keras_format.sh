#!/usr/bin/env bash
# Keras .keras interchange check: keras_format.py (in the Keras parity venv, tests/parity/venv.sh)
# trains models in Keras, hands each .keras file to kiln_keras_format_driver and loads kiln's
# files back in Keras, comparing predictions and the step after loading.
#
# Usage: run_keras_format.sh --driver PATH [--work DIR] [--venv DIR] [CASE ...]
#   --work  scratch directory (default: the driver's directory)
#   --venv  the virtual environment (default: WORK/../parity/parity-venv, the parity check's)
# Exit status: 0 every case agrees; 1 one differs, or the packages cannot be installed although the
# index is reachable; 77 skipped without a reachable package index (KILN_PARITY_REQUIRED=1 turns
# that into 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

driver="" work="" venv=""
cases=()
while (($#)); do
  case "$1" in
    --driver) driver="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) cases+=("$1"); shift ;;
  esac
done
[ -x "$driver" ] || { echo "keras_format: --driver must name the built kiln_keras_format_driver (got '$driver')" >&2; exit 1; }
work="${work:-$(dirname "$driver")}"
venv="${venv:-$work/../parity/parity-venv}"

source "$here/../parity/venv.sh"
kiln_venv keras_format "$venv"
exec "$venv/bin/python" "$here/keras_format.py" --driver "$driver" --work "$work/keras-format-cases" "${cases[@]}"
