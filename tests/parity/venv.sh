# The Python venv of the checks against Python packages (Keras parity, ONNX export): the packages
# pinned in requirements.txt, installed from the package index into a cached venv. Sourced by
# run_parity.sh and tests/onnx/run_onnx_check.sh; they share one venv.
#
#   source tests/parity/venv.sh
#   kiln_venv TAG VENV          # TAG prefixes messages ("parity"); VENV is created or reused
#
# Exit status of the caller (kiln_venv exits): 77 "skipped" when the package index cannot be reached
# (KILN_PARITY_REQUIRED=1, as CI sets, turns that into 1); 1 when the index is reachable but the
# pinned requirements do not install.

kiln_venv_requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"

# Exits 77 (or 1 under KILN_PARITY_REQUIRED=1) saying why: $1 the tag, $2 why.
kiln_skip_or_fail() {
  if [ "${KILN_PARITY_REQUIRED:-0}" = 1 ]; then
    echo "$1: FAIL: $2 (KILN_PARITY_REQUIRED=1)" >&2
    exit 1
  fi
  echo "$1: SKIP: $2"
  exit 77
}

# The index pip would use, to tell "no network" from "installed but broken". $1: the tag.
kiln_index_reachable() {
  local url="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
  url="${url:-https://pypi.org/simple}"
  python3 - "$url" "$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/keras/", timeout=15).read(1)
except Exception as e:
    print(f"{sys.argv[2]}: {sys.argv[1]} unreachable: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

# Makes $2 the venv of requirements.txt, reused while its stamp matches the file. A lock beside it
# keeps two checks started together from building it at once.
kiln_venv() {
  local tag="$1" venv="$2"
  local stamp="$venv/.kiln-parity-requirements"
  mkdir -p "$(dirname "$venv")"
  exec {kiln_venv_lock}>"$venv.lock"
  flock "$kiln_venv_lock"
  if ! cmp -s "$kiln_venv_requirements" "$stamp" 2>/dev/null; then
    # Probe first: without network pip would retry for minutes before giving up.
    kiln_index_reachable "$tag" || kiln_skip_or_fail "$tag" "cannot reach the package index to install the pinned packages"
    echo "$tag: installing the pinned packages into $venv (tests/parity/requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "$tag: FAIL: python3 cannot create a venv (Debian: python3-venv)" >&2; exit 1; }
    if ! "$venv/bin/pip" install -q -r "$kiln_venv_requirements"; then
      rm -rf "$venv"
      echo "$tag: FAIL: the package index is reachable but the pinned requirements did not install" >&2
      exit 1
    fi
    cp "$kiln_venv_requirements" "$stamp"
  fi
  flock -u "$kiln_venv_lock"
  exec {kiln_venv_lock}>&-
}
