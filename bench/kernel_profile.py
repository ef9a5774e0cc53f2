#!/usr/bin/env python3
"""Where a training step's GPU time goes: runs a zoo model's kiln and PyTorch peers (bench_zoo and
zoo/zoo_torch.py, the same shapes as bench/zoo.py) under the kernel_trace injection library and
prints, per run, the time per step of each op family (convolution forward, data gradient, filter
gradient, matrix products, batch normalization, pooling, elementwise, reductions, optimizer, copies
and casts), the GPU's idle time between kernels, and the kernels that take the most time.

The trace covers the whole process; the analysis keeps the last timed epochs but the first (their
host-measured durations, counted back from the GPU's last kernel), so that the warm-up epoch,
algorithm timing and compilation stay out of it, and divides that window's totals by its step count.

Usage: bench/kernel_profile.py --bin-dir build/bench --model vgg --batch-size 512
         [--precision float32 mixed_bfloat16] [--runs kiln eager compile] [--json out.json]
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (family, pattern) in order: the first pattern that matches a kernel's lower-cased name decides.
# cuDNN's kernels carry their direction in the name (dgrad, wgrad; fprop or none for the forward).
FAMILIES = [
    ("conv data gradient", r"dgrad|convolve_dgrad|backward_data"),
    ("conv filter gradient", r"wgrad|conv_wgrad|backward_filter|convolve_wgrad"),
    ("conv forward", r"fprop|implicit_convolve|winograd|fft|conv2d|convolution|xmma_cudnn|cudnn::cnn|nhwc.*conv|conv_"),
    ("batch normalization", r"batch_norm|batchnorm|bn_fw|bn_bw|\bbn_|cudnn::bn"),
    ("matrix product", r"gemm|cublas|cutlass|sm90_xmma|splitk"),
    ("pooling", r"pool"),
    ("optimizer", r"sgd|adam|optimizer|momentum|multi_tensor|foreach|unscale|loss_scale"),
    ("softmax and loss", r"softmax|xent|cross_entropy|nll_loss|log_softmax|accuracy|argmax|top_k"),
    ("reduction", r"reduce|sum_cols|sum_rows|sum_in_order|column_sums"),
    ("copy, cast, layout", r"copy|transpose|cast|convert|layout|nchw|nhwc|pad_kernel|crop|memcpy|memset|fill"),
    ("elementwise", r"elementwise|vectorized|unrolled|map_kernel|map_pairs|binary_broadcast|bias_relu|triton|"
                    r"threshold|relu|add|mul"),
]


def family(name):
    low = name.lower()
    for fam, pattern in FAMILIES:
        if re.search(pattern, low):
            return fam
    return "other"


def read_trace(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5:
                rows.append((int(parts[0]), int(parts[1]), parts[3], parts[4]))
    return rows


def analyse(rows, result, top):
    """Totals per family and the idle time in the window of the last timed epochs, per step."""
    if not rows:
        return {"error": "no kernel in the trace"}
    epochs = result["epoch_s"][2:] or result["epoch_s"][-1:]  # [0] is the warm-up epoch
    last = max(r[1] for r in rows)
    lo = last - int(sum(epochs) * 1e9)
    window = [(max(s, lo), e, kind, name) for s, e, kind, name in rows if e > lo]
    steps = len(epochs) * -(-result["samples"] // result["batch_size"])
    per_family = collections.Counter()
    per_kernel = collections.Counter()
    calls = collections.Counter()
    for s, e, kind, name in window:
        key = name if kind == "kernel" else kind
        per_family[family(key)] += e - s
        per_kernel[key] += e - s
        calls[key] += 1
    busy, end = 0, lo  # the union of the kernels' intervals
    for s, e, _, _ in sorted(window):
        if e > end:
            busy += e - max(s, end)
            end = e
    ms = lambda ns: ns * 1e-6 / steps  # noqa: E731
    return {
        "steps_in_window": steps,
        "step_ms": round(ms(last - lo), 4),
        "busy_ms": round(ms(busy), 4),
        "idle_ms": round(ms(last - lo - busy), 4),
        "families_ms": {k: round(ms(v), 4) for k, v in per_family.most_common()},
        "top_kernels": [{"name": k[:160], "ms": round(ms(v), 4), "calls_per_step": round(calls[k] / steps, 2)}
                        for k, v in per_kernel.most_common(top)],
    }


def run(cmd, trace_lib):
    """Runs `cmd` under the tracer: (its JSON result, the trace's rows, None) or (None, None, why)."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.tsv")
        env = dict(os.environ, CUDA_INJECTION64_PATH=trace_lib, KILN_TRACE_OUT=trace)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return None, None, f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
        return json.loads(lines[-1]), read_trace(trace), None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", required=True, help="the build's bench folder (bench_zoo, libkernel_trace.so)")
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=40, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=4, help="timed epochs after the warm-up epoch (the first is left out)")
    p.add_argument("--precision", nargs="+", default=["float32"])
    p.add_argument("--runs", nargs="+", default=["kiln", "eager"], choices=["kiln", "kiln-eager", "eager", "compile"],
                   help="kiln-eager: kiln without the recorded (CUDA graph) step")
    p.add_argument("--top", type=int, default=12, help="kernels listed per run")
    p.add_argument("--json", default="")
    a = p.parse_args()
    lib = os.path.join(a.bin_dir, "libkernel_trace.so")
    if not os.path.exists(lib):
        sys.exit(f"kernel_profile: {lib} not found; expected a build with the CUDA backend and CUPTI")
    common = ["--model", a.model, "--device", "gpu", "--batch-size", str(a.batch_size), "--steps", str(a.steps),
              "--epochs", str(a.epochs)]
    results = []
    for precision in a.precision:
        for kind in a.runs:
            if kind.startswith("kiln"):
                cmd = [os.path.join(a.bin_dir, "bench_zoo"), *common, "--precision", precision]
                if kind == "kiln-eager":
                    cmd.append("--no-cuda-graphs")
            else:
                cmd = [sys.executable, os.path.join(HERE, "zoo", "zoo_torch.py"), *common, "--precision", precision,
                       "--mode", kind]
            out, rows, err = run(cmd, lib)
            entry = {"model": a.model, "batch_size": a.batch_size, "precision": precision, "run": kind}
            if err:
                entry["error"] = err
            else:
                entry["images_per_s"] = out["images_per_s"]
                entry.update(analyse(rows, out, a.top))
            results.append(entry)
            print_entry(entry)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


def print_entry(e):
    head = f"### {e['model']} batch {e['batch_size']} {e['precision']} {e['run']}"
    if "error" in e:
        print(f"{head}: {e['error']}\n")
        return
    print(f"{head}: {e['images_per_s']:,.0f} images/s, {e['step_ms']:.3f} ms/step "
          f"(kernels {e['busy_ms']:.3f}, idle {e['idle_ms']:.3f})\n")
    print("| family | ms/step | share |\n|---|---|---|")
    for fam, ms in e["families_ms"].items():
        print(f"| {fam} | {ms:.3f} | {100 * ms / e['step_ms']:.1f}% |")
    print("\n| kernel | ms/step | calls/step |\n|---|---|---|")
    for k in e["top_kernels"]:
        print(f"| `{k['name']}` | {k['ms']:.3f} | {k['calls_per_step']} |")
    print(flush=True)


if __name__ == "__main__":
    main()
