#!/usr/bin/env python3
"""Runs kiln's bench_train and its PyTorch peer (torch_seed.py) for each configuration in the same
invocation on the same machine, and prints a table of medians and their ratio kiln / PyTorch.

Configurations: CPU at batch 10 (steps/s) and 128 (images/s) on each --threads count; GPU at
batch 10, 32, 128, 512 and 2048 (steps/s and images/s). Both programs get the same batch size,
steps, warm-up and repeats; the one that runs first alternates between configurations so that
neither always meets the colder or the warmer machine.

Math: float32 on both sides by default (kiln's default; torch_seed.py turns PyTorch's TF32 off).
--kiln-tf32 turns TF32 on for both (kiln's --tf32, torch_seed.py's --tf32), so the comparison stays
like for like; the table's header names the math both used.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (batch, steps per repeat, warm-up steps, repeats): enough steps that a repeat lasts well over the
# timer's resolution and a GPU's launch queue fills, few enough that a slow run stays in budget.
CPU_CONFIGS = [(10, 50, 10, 5), (128, 10, 3, 5)]
GPU_CONFIGS = [(10, 200, 50, 5), (32, 200, 50, 5), (128, 200, 50, 5), (512, 100, 20, 5), (2048, 50, 10, 5)]


def run_one(cmd, env, timeout):
    """Runs one benchmark program; returns its JSON, or a dict with 'error' saying why there is none."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        proc = subprocess.run(cmd + ["--json", path], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    try:
        if proc.returncode == 2:  # both programs' code for "no usable GPU"
            return {"error": "skipped: " + (proc.stderr.strip().splitlines() or ["no usable GPU"])[-1].replace("|", "/")}
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            return {"error": f"exit {proc.returncode}: " + last.replace("|", "/"), "stderr": proc.stderr[-4000:]}
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


def compare(device, threads, batch, steps, warmup, repeats, args, order):
    common = ["--device", device, "--threads", str(threads), "--batch-size", str(batch),
              "--steps", str(steps), "--warmup", str(warmup), "--repeats", str(repeats)]
    env = dict(os.environ)
    if device == "cpu":  # both runtimes size their thread pools from this too
        env["OMP_NUM_THREADS"] = str(threads)
    tf32 = ["--tf32"] if args.kiln_tf32 else []
    kiln_cmd = [args.bench_train] + common + (["--fit"] if args.kiln_fit else []) + tf32
    runs = {"kiln": kiln_cmd, "pytorch": [args.python, args.torch_script] + common + tf32}
    results = {}
    for name in (("kiln", "pytorch") if order == 0 else ("pytorch", "kiln")):
        results[name] = run_one(runs[name], env, args.timeout)
        print(f"  {device} threads={threads} batch={batch} {name}: "
              + (results[name].get("error") or f"{results[name]['median_steps_per_s']:.2f} steps/s"),
              file=sys.stderr, flush=True)
    return {"device": device, "threads": threads, "batch_size": batch, "steps": steps, "warmup": warmup,
            "repeats": repeats, "kiln": results["kiln"], "pytorch": results["pytorch"]}


def fmt(r, key):
    return "-" if "error" in r else f"{r[key]:.1f}" if r[key] >= 100 else f"{r[key]:.2f}"


def table(rows, tf32=False):
    # TF32 applies to GPU math only; CPU rows are float32 either way.
    math = "GPU math: TF32 for both (CPU: float32)" if tf32 else "math: float32 for both (no TF32)"
    lines = [math, "",
             "| device | threads | batch | metric | kiln | PyTorch | kiln / PyTorch |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        k, t = r["kiln"], r["pytorch"]
        metrics = ["steps/s", "images/s"] if r["device"] == "gpu" else (["steps/s"] if r["batch_size"] <= 10 else ["images/s"])
        for m in metrics:
            key = "median_steps_per_s" if m == "steps/s" else "median_images_per_s"
            if k.get("mode") == "fit":
                m += " (kiln fit)"
            ratio = "-" if "error" in k or "error" in t else f"{k[key] / t[key]:.3f}"
            threads = r["threads"] if r["device"] == "cpu" else "-"
            lines.append(f"| {r['device']} | {threads} | {r['batch_size']} | {m} | {fmt(k, key)} | {fmt(t, key)} | {ratio} |")
        for name, res in (("kiln", k), ("PyTorch", t)):
            if "error" in res:
                lines.append(f"|  |  |  | {name}: {res['error']} |  |  |  |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "gpu", "all"], default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[2, os.cpu_count()],
                   help="CPU thread counts (default: 2 and all cores)")
    p.add_argument("--bench-train", default=os.path.join(HERE, "..", "build-bench", "bench", "bench_train"))
    p.add_argument("--torch-script", default=os.path.join(HERE, "torch_seed.py"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--timeout", type=int, default=180, help="seconds one program may run")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies steps and warm-up (quick checks: 0.2)")
    p.add_argument("--json", default="", help="write every result here")
    p.add_argument("--kiln-fit", action="store_true",
                   help="time kiln's model.fit (CUDA graphs on a GPU) instead of its hand-written loop")
    p.add_argument("--kiln-tf32", action="store_true",
                   help="let both kiln and PyTorch run float32 GPU matmuls and convolutions as TF32 (tensor cores)")
    p.add_argument("--table-from", default="", help="only print the table of a JSON file written by --json")
    args = p.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            report = json.load(f)
        print(f"{report['date']}  {report['command']}")
        print(table(report["rows"], report.get("tf32", False)))
        return 0

    def scaled(cfg):
        b, s, w, r = cfg
        return b, max(1, int(s * args.scale)), max(1, int(w * args.scale)), r

    rows = []
    order = 0
    if args.device in ("cpu", "all"):
        for threads in dict.fromkeys(args.threads):  # de-duplicated, in order
            for cfg in CPU_CONFIGS:
                rows.append(compare("cpu", threads, *scaled(cfg), args, order))
                order ^= 1
    if args.device in ("gpu", "all"):
        for cfg in GPU_CONFIGS:
            rows.append(compare("gpu", 1, *scaled(cfg), args, order))
            order ^= 1
            if "error" in rows[-1]["kiln"] and rows[-1]["kiln"]["error"].startswith("skipped"):
                print("  kiln has no usable GPU here: the remaining GPU configurations are skipped",
                      file=sys.stderr)
                break

    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "tf32": args.kiln_tf32,
              "rows": rows}
    print(table(rows, args.kiln_tf32))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
