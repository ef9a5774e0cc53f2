#!/usr/bin/env python3
"""Turns bench_ops' JSON (--benchmark_out) into a per-kernel profile of the seed model's training
step: each kernel's median time, its share of the measured whole step, and what is left over for
the op layer, autograd and the kernels not listed (the small second Dense layer, zero-fills).

The step runs, per batch: conv2d_fwd, conv_bias_add, relu_fwd, max_pool2d_fwd, dense1_fwd,
softmax_xent, dense1_bwd_filter, dense1_bwd_data, max_pool2d_bwd, relu_bwd, conv_bias_grad,
conv2d_bwd_filter and one Adam update of all parameters. conv2d_bwd_data is listed but not in the
step: the input image needs no gradient. Where the file has the fused Dense entries, the first Dense
layer counts as dense1_fused_fwd and dense1_fused_bwd (what the step runs since the fusion, its bias
and ReLU included) instead of its three GEMMs; the unfused entries are listed beside them.
"""
import argparse
import json
import re
import sys
from collections import defaultdict

IN_STEP = ["conv2d_fwd", "conv_bias_add", "relu_fwd", "max_pool2d_fwd", "dense1_fwd", "softmax_xent",
           "dense1_bwd_filter", "dense1_bwd_data", "max_pool2d_bwd", "relu_bwd", "conv_bias_grad",
           "conv2d_bwd_filter"]
# Timed beside the step: kernels the seed's step does not run (its first layer needs no data
# gradient; it has no BatchNormalization and no average pooling).
NOT_IN_STEP = ["conv2d_bwd_data", "batch_norm_fwd", "batch_norm_bwd", "batch_norm_relu_fwd", "batch_norm_relu_bwd",
               "avg_pool2d_6ch_fwd", "avg_pool2d_6ch_bwd"]
DENSE1_GEMMS = ["dense1_fwd", "dense1_bwd_filter", "dense1_bwd_data"]
DENSE1_FUSED = ["dense1_fused_fwd", "dense1_fused_bwd"]
DENSE1_UNFUSED = ["dense1_unfused_fwd", "dense1_unfused_bwd"]


def in_step(row):
    """The step's kernels present in `row`, and those listed beside them."""
    if all(k in row for k in DENSE1_FUSED):
        step = [k for k in IN_STEP if k not in DENSE1_GEMMS] + DENSE1_FUSED
        return step, NOT_IN_STEP + DENSE1_GEMMS + DENSE1_UNFUSED
    return IN_STEP, NOT_IN_STEP


def medians(path):
    """{(device, batch or None): {kernel: median microseconds}} from one bench_ops JSON file."""
    with open(path) as f:
        data = json.load(f)
    out = defaultdict(dict)
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        m = re.match(r"(cpu|gpu)/([a-z0-9_]+)(?:/N:(\d+))?", b["run_name"] if "run_name" in b else b["name"])
        if not m:
            continue
        # per_call (seconds) is the time of one kernel call; on the GPU an iteration holds several.
        if "per_call" in b:
            us = b["per_call"] * 1e6
        else:
            us = b["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        out[(m.group(1), int(m.group(3)) if m.group(3) else None)][m.group(2)] = us
    return out, data.get("context", {})


def plain(path):
    """Median rows of any other Google Benchmark JSON (e.g. bench_conv_method's)."""
    with open(path) as f:
        data = json.load(f)
    lines = [f"{path}:", "| benchmark | median us |", "| --- | ---: |"]
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
            name = re.sub(r"/min_time:[^/]*|/repeats:\d+|/(real|manual)_time_median$|_median$", "", b["name"])
            lines.append(f"| {name} | {b['real_time'] * scale:.1f} |")
    return "\n".join(lines)


def profile(path):
    meds, ctx = medians(path)
    if not meds:
        return plain(path)
    lines = [f"bench_ops profile ({path}; kiln threads {ctx.get('kiln_threads', '?')}, "
             f"{ctx.get('num_cpus', '?')} CPUs{', ' + ctx['kiln_gpu'] if 'kiln_gpu' in ctx else ''})"]
    for (device, batch) in sorted(k for k in meds if k[1] is not None):
        row, adam = meds[(device, batch)], meds.get((device, None), {}).get("adam_step_all_params")
        step = row.get("train_step")
        lines += ["", f"{device}, batch {batch}: whole step {step:.1f} us" if step else f"{device}, batch {batch}",
                  "| kernel | median us | share of step |", "| --- | ---: | ---: |"]
        total = 0.0
        step_kernels, beside = in_step(row)
        kernels = [(k, row.get(k)) for k in step_kernels] + [("adam_step_all_params", adam)]
        for name, t in sorted(kernels, key=lambda kv: -(kv[1] or 0)):
            if t is None:
                continue
            total += t
            lines.append(f"| {name} | {t:.1f} | {100 * t / step:.1f}% |" if step else f"| {name} | {t:.1f} | |")
        if step:
            lines.append(f"| (sum of kernels) | {total:.1f} | {100 * total / step:.1f}% |")
            lines.append(f"| (rest: ops, autograd, small kernels) | {step - total:.1f} | {100 * (step - total) / step:.1f}% |")
        for name in beside:
            if name in row:
                lines.append(f"| {name} (not in the step) | {row[name]:.1f} | |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="bench_ops --benchmark_out JSON files")
    args = p.parse_args()
    for path in args.files:
        print(profile(path))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
