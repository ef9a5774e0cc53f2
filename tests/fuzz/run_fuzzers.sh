#!/usr/bin/env bash
# Builds kiln's libFuzzer targets with clang and runs each one for a time budget. The corpus of
# each target grows in <build>/fuzz-corpus/<name>/ from run to run and starts from the committed
# seeds in tests/fuzz/seeds/<name>/ (for the model-file targets, real Sequential::save output); every
# crash, leak, timeout or out-of-memory input is copied to tests/fuzz/regressions/<name>/, which
# the unit tests replay.
#
# Usage: tests/fuzz/run_fuzzers.sh [seconds per target (default 60)] [target names... (default all)]
# Environment: KILN_FUZZ_BUILD_DIR (default <repo>/build-fuzz), KILN_FUZZ_JOBS (build jobs, default 2),
# KILN_FUZZ_PARALLEL (targets fuzzed at once, default: the cores).
# Per-target libFuzzer flags may be kept in tests/fuzz/<name>.flags (one line).
set -euo pipefail

budget="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${KILN_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${KILN_FUZZ_JOBS:-2}"
parallel="${KILN_FUZZ_PARALLEL:-$(nproc)}"

# libFuzzer ships with clang's compiler-rt; Debian splits it into libclang-rt-<version>-dev.
command -v clang++ >/dev/null || { echo "clang++ not found; install clang (Debian: clang, libclang-rt-14-dev)" >&2; exit 1; }
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe_dir/probe.cpp"
if ! clang++ -fsanitize=fuzzer "$probe_dir/probe.cpp" -o "$probe_dir/probe" 2>"$probe_dir/log"; then
  cat "$probe_dir/log" >&2
  echo "clang++ -fsanitize=fuzzer does not link: the libFuzzer runtime is missing (Debian: apt-get install libclang-rt-14-dev)" >&2
  exit 1
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_FUZZ=ON -DKILN_WITH_CUDA=OFF -DKILN_BUILD_TESTS=ON \
  -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCH=OFF >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log" >&2; exit 1; }
cmake --build "$build" --target fuzzers -j "$jobs"

if [[ $# -gt 0 ]]; then
  names=("$@")
else
  names=()
  for exe in "$build"/tests/fuzz/fuzz_*; do [[ -x "$exe" ]] && names+=("$(basename "$exe" | sed 's/^fuzz_//')"); done
fi

# Runs one target for the budget; writes its summary line to $build/fuzz-<name>.summary and its
# result to $build/fuzz-<name>.status (1 on a finding or a fuzzer error).
run_one() {
  local name=$1
  local exe="$build/tests/fuzz/fuzz_$name"
  local corpus="$build/fuzz-corpus/$name"
  local artifacts="$build/fuzz-artifacts/$name"
  local regressions="$root/tests/fuzz/regressions/$name"
  mkdir -p "$corpus" "$artifacts" "$regressions"
  rm -f "$artifacts"/*  # only this run's findings are copied
  # The corpus folder comes first: libFuzzer writes new inputs there, never into the seed folder.
  local inputs=("$corpus")
  if [[ -d "$root/tests/fuzz/seeds/$name" ]]; then
    inputs+=("$root/tests/fuzz/seeds/$name")
  else
    echo "note: no seeds in tests/fuzz/seeds/$name; fuzz_$name starts from an empty corpus" >&2
  fi
  local flags=()
  [[ -f "$root/tests/fuzz/$name.flags" ]] && read -r -a flags <"$root/tests/fuzz/$name.flags"
  local log="$build/fuzz-$name.log"

  echo "== fuzz_$name: ${budget}s, corpus $corpus"
  local status=0
  "$exe" -max_total_time="$budget" -print_final_stats=1 -artifact_prefix="$artifacts/" "${flags[@]}" \
    "${inputs[@]}" >"$log" 2>&1 || status=$?

  local found=0 f
  for f in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
    [[ -f "$f" ]] || continue
    cp "$f" "$regressions/"
    found=$((found + 1))
  done
  local execs corpus_size
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  corpus_size="$(find "$corpus" -type f | wc -l)"
  rm -f "$build/fuzz-$name.status"
  echo "fuzz_$name: ${execs:-?} executions in ${budget}s, corpus $corpus_size inputs, $found finding(s) (exit $status; log $log)" \
    >"$build/fuzz-$name.summary"
  if [[ $status -ne 0 || $found -gt 0 ]]; then
    tail -n 40 "$log" >&2
    echo 1 >"$build/fuzz-$name.status"
  else
    echo 0 >"$build/fuzz-$name.status"
  fi
}

for name in "${names[@]}"; do
  [[ -x "$build/tests/fuzz/fuzz_$name" ]] || { echo "no fuzz target fuzz_$name in $build/tests/fuzz" >&2; exit 1; }
done
# Each target fuzzes on one core: as many run at once as there are cores (each keeps its whole
# budget; the stage takes the budget times the targets over the cores).
for name in "${names[@]}"; do
  rm -f "$build/fuzz-$name.status"
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  run_one "$name" &
done
wait
failed=0
for name in "${names[@]}"; do [[ "$(cat "$build/fuzz-$name.status" 2>/dev/null)" == 0 ]] || failed=1; done
summary=()
for name in "${names[@]}"; do summary+=("$(cat "$build/fuzz-$name.summary" 2>/dev/null || echo "fuzz_$name: no summary")"); done

echo "== summary"
printf '%s\n' "${summary[@]}"
[[ $failed -eq 0 ]] || echo "findings were copied to tests/fuzz/regressions/; replay them with kiln_tests" >&2
exit "$failed"
