#!/usr/bin/env bash
# Builds kiln (Release, with the CUDA backend when it builds) on a GPU machine and runs the PyTorch
# comparison there: CPU on 2 threads and on all cores, then the GPU when kiln can use one; then
# the per-kernel profile (bench_ops) and the CPU convolution-method check. Logs and JSON go to
# $OUT (default build-bench-out/). Each phase gets what is left of a time budget, so that a slow or
# broken phase cannot take the later ones with it.
# Usage: bench/run_device.sh
#   BENCH_BUDGET_S   seconds for everything (default 450)
#   BENCH_BUILD_DIR  build folder (default build-bench; the CPU-only fallback adds -cpu)
#   BENCH_WITH_CUDA  AUTO (default) or OFF
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/build-bench-out}
budget=${BENCH_BUDGET_S:-450}
jobs=${BENCH_JOBS:-$(nproc)}
mkdir -p "$out"
cd "$root"
log=$out/run.log
exec > >(tee -a "$log") 2>&1

left() { echo $((budget - SECONDS)); }
phase() { echo; echo "=== $1 (t=${SECONDS}s, $(left)s left) ==="; }
# Runs a phase's command under the remaining budget less `reserve` seconds kept for later phases.
bounded() {
  local reserve=$1; shift
  local t=$(( $(left) - reserve ))
  if (( t < 10 )); then echo "skipped: too little time left"; return 124; fi
  timeout --kill-after=5 "$t" "$@"
}

phase "machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
  /usr/local/cuda/bin/nvcc --version 2>/dev/null | sed -n 's/.*release /nvcc: /p'
  for h in /usr/include/x86_64-linux-gnu/cudnn_version*.h /usr/include/cudnn_version.h; do
    [[ -f $h ]] && awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{v=v (v?".":"") $3} END{print "cudnn (system): " v}' "$h" && break
  done
  python3 -c 'import torch; print("pytorch:", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
  echo "compiler: $(c++ --version | head -1)"
} | tee "$out/machine.txt"

phase "build (CUDA backend when it builds)"
build=${BENCH_BUILD_DIR:-build-bench}
cuda_flags=(-DKILN_WITH_CUDA="${BENCH_WITH_CUDA:-AUTO}" -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc
            -DCMAKE_CUDA_ARCHITECTURES="90;90-virtual")
common=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCH=ON)
if ! { bounded 300 cmake -S . -B "$build" "${common[@]}" "${cuda_flags[@]}" &&
       bounded 300 cmake --build "$build" -j"$jobs"; } > "$out/build.log" 2>&1; then
  tail -20 "$out/build.log"
  echo "the build with CUDA failed; building the CPU backend alone so that the CPU comparison still runs"
  build=$build-cpu
  { bounded 240 cmake -S . -B "$build" "${common[@]}" -DKILN_WITH_CUDA=OFF &&
    bounded 240 cmake --build "$build" -j"$jobs"; } >> "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
fi
grep -E "kiln: building" "$out/build.log" | head -2
bin=$root/$build/bench

phase "GPU check"
gpu=0
if "$bin/bench_train" --device gpu --steps 1 --warmup 0 --repeats 1 > "$out/gpu_check.txt" 2>&1; then gpu=1; fi
cat "$out/gpu_check.txt"; rm -f "$out/gpu_check.txt"
echo "kiln GPU usable for training: $gpu"

phase "kiln vs PyTorch"
device=cpu; (( gpu )) && device=all
bounded 150 python3 bench/compare.py --device "$device" --threads 2 "$(nproc)" --bench-train "$bin/bench_train" \
  --timeout 120 --json "$out/compare.json"

phase "bench_ops (per-kernel profile, all cores; GPU kernels when usable)"
bounded 60 "$bin/bench_ops" --threads="$(nproc)" --benchmark_out="$out/bench_ops_all_threads.json" \
  --benchmark_out_format=json

phase "bench_ops (CPU, 2 threads)"
bounded 30 "$bin/bench_ops" --threads=2 --benchmark_filter='^cpu/' --benchmark_out="$out/bench_ops_2_threads.json" \
  --benchmark_out_format=json

phase "convolution method on the CPU"
bounded 0 "$bin/bench_conv_method" --benchmark_out="$out/conv_method.json" --benchmark_out_format=json

phase "summary"
[[ -f $out/compare.json ]] && python3 bench/compare.py --table-from "$out/compare.json"
for f in "$out"/bench_ops_all_threads.json "$out"/bench_ops_2_threads.json "$out"/conv_method.json; do
  [[ -f $f ]] && python3 bench/ops_profile.py "$f"
done
