#!/usr/bin/env bash
# Keras parity: installs Keras 3 (TensorFlow CPU) from PyPI into a cached venv, then trains every
# case of parity.py in Keras and in kiln (kiln_parity_driver) and compares them step by step.
#
# Usage: run_parity.sh --driver PATH [--work DIR] [--venv DIR] [--cifar DIR] [CASE ...]
#   --work  scratch directory for exchanged files (default: the driver's directory)
#   --venv  the virtual environment (default: WORK/parity-venv; reused while requirements.txt is unchanged)
#   --cifar directory holding cifar-10-batches-bin/ (default: $KILN_CIFAR10_DIR, else written from
#           ../shared/data/cifar10 beside the repository into WORK/cifar10; the CIFAR case skips without it)
# Exit status: 0 all cases agree; 1 a case differs, or Keras cannot be installed although the package
# index is reachable; 77 skipped because the package index cannot be reached (KILN_PARITY_REQUIRED=1,
# as CI sets, turns that into 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

driver="" work="" venv="" cifar="${KILN_CIFAR10_DIR:-}"
cases=()
while (($#)); do
  case "$1" in
    --driver) driver="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --cifar) cifar="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) cases+=("$1"); shift ;;
  esac
done
[ -x "$driver" ] || { echo "parity: --driver must name the built kiln_parity_driver (got '$driver')" >&2; exit 1; }
work="${work:-$(dirname "$driver")}"
venv="${venv:-$work/parity-venv}"
mkdir -p "$work"

# ---- the venv: reused while its stamp matches requirements.txt ----
source "$here/venv.sh"
kiln_venv parity "$venv"
py="$venv/bin/python"
"$py" -c "import keras, tensorflow" 2>/dev/null || {
  echo "parity: FAIL: $venv has the pinned packages but cannot import keras/tensorflow" >&2
  exit 1
}

# ---- CIFAR-10: the binary batches, written from the shared JPEG archive when not given ----
if [ -z "$cifar" ] || [ ! -f "$cifar/cifar-10-batches-bin/data_batch_1.bin" ]; then
  shared="$repo/../shared/data/cifar10"
  if [ -f "$work/cifar10/cifar-10-batches-bin/data_batch_1.bin" ]; then
    cifar="$work/cifar10"
  elif [ -f "$shared/prepare.py" ]; then
    echo "parity: writing CIFAR-10 binary batches to $work/cifar10"
    "$py" "$shared/prepare.py" "$work/cifar10" >/dev/null && cifar="$work/cifar10"
  fi
fi

exec "$py" "$here/parity.py" --driver "$driver" --work "$work/parity-cases" --cifar "$cifar" "${cases[@]}"
