#!/usr/bin/env bash
# The GPU machine's whole check in one run: configure (code for sm_90 plus portable PTX, cuDNN
# from the toolkit or the system), build, the full CTest suite, compute-sanitizer memcheck and
# racecheck on the GPU tests, and the devices example. Logs go to $OUT (or build-gpu/logs).
# Usage: tests/run_gpu.sh [build-dir]; STEPS="gpu_tests memcheck" (say) runs only those after the build;
# EXTRA_CMAKE_ARGS="-DKILN_BUILD_BENCH=ON" (say) adds configure options.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-gpu}
LOGS=${OUT:-$BUILD/logs}
mkdir -p "$LOGS"
export PATH=/usr/local/cuda/bin:$PATH
# Every suite that needs a GPU: Cuda* suites, *Gpu* suites and the recorded-step equivalence tests.
GPU_FILTER='Cuda*.*:*Gpu*.*:*.*Gpu*:RecordedStep.*:Devices.*'
# Four tests provoke a CUDA API error on purpose (two failed cudaMallocs, two stream captures broken
# by a synchronize), which the sanitizers report as errors; they run in gpu_tests and ctest.
SANITIZER_FILTER="$GPU_FILTER-CudaAllocator.OutOfMemorySaysWhatToDo:CudaTraining.HugeBatchRaisesOutOfMemoryThenNormalTrainingWorks:CudaGraph.FailedRecordingLeavesTheDeviceUsable:CudaGraph.EvaluateStaysEagerWhenRecordingFails"
status=0

STEPS=${STEPS-devices gpu_tests memcheck racecheck ctest}  # STEPS="" builds only

step() {  # step NAME COMMAND...: runs it, logs it, remembers a failure
  local name=$1; shift
  case " configure build $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  local start=$SECONDS
  echo "== $name: $*"
  "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc ($((SECONDS - start)) s), log $LOGS/$name.log"
  tail -n 5 "$LOGS/$name.log" | sed 's/^/   | /'
  [ $rc -ne 0 ] && status=1
  return $rc
}

{ nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv; nvcc --version | tail -1; } \
  >"$LOGS/machine.txt" 2>&1
cat "$LOGS/machine.txt"

step configure cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA=ON -DKILN_BUILD_BENCH=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" ${EXTRA_CMAKE_ARGS:-} || { echo "configure failed"; exit 1; }
grep -E "kiln: building|cuDNN" "$LOGS/configure.log"
step build cmake --build "$BUILD" -j16 || { echo "build failed"; exit 1; }
step devices "$BUILD/examples/devices" --require-gpu
cat "$LOGS/devices.log"
step gpu_tests "$BUILD/tests/kiln_tests" --gtest_filter="$GPU_FILTER"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]" "$LOGS/gpu_tests.log" | head -20
step memcheck timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$BUILD/tests/kiln_tests" --gtest_filter="$SANITIZER_FILTER"
grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED) " "$LOGS/memcheck.log" | head
step racecheck timeout 420 compute-sanitizer --tool racecheck --error-exitcode 3 \
  "$BUILD/tests/kiln_tests" --gtest_filter="$SANITIZER_FILTER"
grep -E "RACECHECK SUMMARY|ERROR SUMMARY|^\[  (PASSED|FAILED) " "$LOGS/racecheck.log" | head
step ctest ctest --test-dir "$BUILD" -j8 --output-on-failure --timeout 300
grep -E "tests passed|tests failed|\*\*\*Failed|\(Failed\)|Not Run" "$LOGS/ctest.log" | head -40
echo "run_gpu.sh: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED)"
exit $status
