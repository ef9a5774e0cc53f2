#!/usr/bin/env python3
"""Runs examples/cifar10_speedrun and its peer, airbench94.py, in one call and prints one Markdown
table: mean and std of the test-time-augmented accuracy, and the median (min-max) seconds per run
after each process's first run (which carries the one-time costs: cuDNN's algorithm timing, the
step's recording, the peer's cudnn.benchmark), plus that first run's time.

Both train on the same CIFAR-10 files: --data is the folder holding cifar-10-batches-bin/ (kiln reads
it as is; the peer's run.sh converts it to its .pt files first). --peer is the folder of the peer's
scripts and run.sh (the airbench peers kept beside this project). --order kiln-first (default) or
peer-first; --json writes both runs' parsed per-run figures.

    python3 bench/speedrun.py --speedrun build/examples/cifar10_speedrun --data /tmp/cifar \\
        --peer ../shared/peers/airbench --runs 20
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

# kiln's per-run line: run, build_s, whiten_s, train_s, eval_s, total_s, accuracy, tta_accuracy.
KILN_ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def run(cmd, env=None, timeout=1800):
    """stdout of `cmd`, or exits naming the command and its last error line."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"speedrun: {' '.join(cmd)} exited with {proc.returncode}: {last}")
    return proc.stdout


def kiln_runs(binary, data, runs, extra):
    out = run([binary, "--data", data, "--runs", str(runs), *extra])
    rows = [KILN_ROW.match(line) for line in out.splitlines()]
    return [{"seconds": float(m.group(6)), "tta_accuracy": float(m.group(8))} for m in rows if m]


def peer_runs(peer, data, runs):
    """The peer's "eval" rows: tta_val_acc and total_time_seconds (the last two columns)."""
    env = dict(os.environ, RUNS=str(runs))
    out = run(["bash", os.path.join(peer, "run.sh"), os.path.join(data, "cifar-10-batches-bin"), "legacy"], env=env)
    result = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and "eval" in cells:
            result.append({"seconds": float(cells[-1]), "tta_accuracy": float(cells[-2])})
    return result


def summary(name, runs):
    if len(runs) < 2:
        return f"| {name} | {len(runs)} run(s): need 2 or more | | |"
    acc = [r["tta_accuracy"] for r in runs]
    later = [r["seconds"] for r in runs[1:]]
    return (f"| {name} | {statistics.mean(acc):.4f} ({statistics.stdev(acc):.4f}) | "
            f"{statistics.median(later):.3f} ({min(later):.3f}-{max(later):.3f}) | {runs[0]['seconds']:.3f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speedrun", required=True, help="the cifar10_speedrun binary")
    p.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin/")
    p.add_argument("--peer", required=True, help="folder of airbench94.py and run.sh")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--order", choices=["kiln-first", "peer-first"], default="kiln-first")
    p.add_argument("--kiln-args", nargs=argparse.REMAINDER, default=[], help="passed on to cifar10_speedrun")
    p.add_argument("--json", default="")
    a = p.parse_args()
    if a.runs < 2:
        sys.exit("speedrun: --runs must be at least 2 (the first run of each process is reported apart)")
    steps = [("kiln", lambda: kiln_runs(a.speedrun, a.data, a.runs, a.kiln_args)),
             ("airbench94.py", lambda: peer_runs(a.peer, a.data, a.runs))]
    if a.order == "peer-first":
        steps.reverse()
    results = {name: fn() for name, fn in steps}
    print("| | mean TTA accuracy (std) | seconds per run after the first: median (min-max) | first run (s) |")
    print("|---|---|---|---|")
    for name in ("kiln", "airbench94.py"):
        print(summary(name, results[name]))
    if len(results["kiln"]) > 1 and len(results["airbench94.py"]) > 1:
        ratio = statistics.median(r["seconds"] for r in results["airbench94.py"][1:]) / statistics.median(
            r["seconds"] for r in results["kiln"][1:])
        print(f"\nkiln runs {ratio:.2f}x the peer's speed (medians after the first run).")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
