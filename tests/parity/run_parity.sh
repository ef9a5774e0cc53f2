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

skip_or_fail() {  # $1: why Keras is not there
  if [ "${KILN_PARITY_REQUIRED:-0}" = 1 ]; then
    echo "parity: FAIL: $1 (KILN_PARITY_REQUIRED=1)" >&2
    exit 1
  fi
  echo "parity: SKIP: $1"
  exit 77
}

# The index pip would use, to tell "no network" from "installed but broken".
index_reachable() {
  local url="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
  url="${url:-https://pypi.org/simple}"
  python3 - "$url" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/keras/", timeout=15).read(1)
except Exception as e:
    print(f"parity: {sys.argv[1]} unreachable: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

# ---- the venv: reused while its stamp matches requirements.txt ----
stamp="$venv/.kiln-parity-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  # Probe first: without network pip would retry for minutes before giving up.
  index_reachable || skip_or_fail "cannot reach the package index to install Keras"
  echo "parity: installing Keras into $venv (pinned in tests/parity/requirements.txt)"
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "parity: FAIL: python3 cannot create a venv (Debian: python3-venv)" >&2; exit 1; }
  if ! "$venv/bin/pip" install -q -r "$here/requirements.txt"; then
    rm -rf "$venv"
    echo "parity: FAIL: the package index is reachable but the pinned requirements did not install" >&2
    exit 1
  fi
  cp "$here/requirements.txt" "$stamp"
fi
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
