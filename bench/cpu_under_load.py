#!/usr/bin/env python3
"""kiln's CPU training on a quiet machine and on one where another process keeps a core busy.

Runs one epoch of the seed recipe (examples/cifar10: --limit 10000 --epochs 1 --batch-size 10
--threads 2, with its test-set evaluation) once on a quiet machine and once with a busy loop pinned
to one core (taskset), for each kiln build given, and optionally the same number of training
steps of PyTorch (torch_seed.py). Quiet and loaded runs alternate; each figure is the median of
--repeats runs, in seconds, with the range of the runs beside it.

  python3 bench/cpu_under_load.py --kiln after=build --kiln before=/tmp/kiln-head/build --torch
  python3 bench/cpu_under_load.py --cpus 0,1      # on a larger machine: two of its cores

The busy loop runs on the last of --cpus (default: cpu 1); with --cpus, everything else is
restricted to those cores too, so a 2-core machine can be reproduced on any larger one.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def busy_loop(cpu):
    """Starts a process that spins on `cpu` until it is killed."""
    return subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", "while :; do :; done"])


def run_timed(cmd, env, timeout, parse):
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return parse(p.stdout, wall)


def kiln_epoch(build, a):
    exe = os.path.join(build, "examples", "cifar10")
    cmd = [exe, "--device", "cpu", "--data", a.data, "--limit", str(a.limit), "--epochs", "1",
           "--batch-size", str(a.batch_size), "--threads", str(a.threads), "--verbose", "0", "--seed", "0"]

    def parse(out, _wall):
        m = re.search(r"trained 1 epochs in ([0-9.]+) s", out)
        if not m:
            raise RuntimeError(f"no timing in the output of {exe}:\n{out[-2000:]}")
        return float(m.group(1))
    return cmd, parse


def torch_steps(a):
    steps = a.limit // a.batch_size
    out_json = os.path.join(tempfile.mkdtemp(prefix="cpu_under_load_"), "torch.json")
    cmd = [a.python, os.path.join(HERE, "torch_seed.py"), "--device", "cpu", "--threads", str(a.threads),
           "--batch-size", str(a.batch_size), "--steps", str(steps), "--warmup", "10", "--repeats", "1",
           "--json", out_json]

    def parse(_out, _wall):
        with open(out_json) as f:
            r = json.load(f)
        return steps / r["median_steps_per_s"]
    return cmd, parse


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kiln", action="append", default=[],
                   help="LABEL=BUILD_DIR of a kiln build with examples/cifar10 (repeatable; default after=build)")
    p.add_argument("--data", default=os.path.join(ROOT, "build", "cifar10"),
                   help="folder with cifar-10-batches-bin/")
    p.add_argument("--torch", action="store_true",
                   help="also time PyTorch (torch_seed.py) for the same number of training steps, no evaluation")
    p.add_argument("--python", default=sys.executable, help="the Python that has PyTorch")
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpus", default="", help="restrict every run to these cores, e.g. 0,1; the busy loop takes the last")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json", default="", help="also write every run's time here")
    a = p.parse_args()

    if not shutil.which("taskset"):
        sys.exit("cpu_under_load: needs taskset (util-linux)")
    builds = [k.split("=", 1) if "=" in k else (os.path.basename(k.rstrip("/")), k) for k in a.kiln] or \
        [("after", os.path.join(ROOT, "build"))]
    cpus = [c for c in a.cpus.split(",") if c]
    busy_cpu = cpus[-1] if cpus else "1"
    prefix = ["taskset", "-c", a.cpus] if cpus else []
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    jobs = [(f"kiln {label}", *kiln_epoch(build, a)) for label, build in builds]
    if a.torch:
        jobs.append(("PyTorch", *torch_steps(a)))

    times = {name: {"quiet": [], "loaded": []} for name, _, _ in jobs}
    for rep in range(a.repeats):
        for name, cmd, parse in jobs:
            for state in (("quiet", "loaded") if rep % 2 == 0 else ("loaded", "quiet")):
                busy = busy_loop(busy_cpu) if state == "loaded" else None
                try:
                    time.sleep(0.2)
                    t = run_timed(prefix + cmd, env, a.timeout, parse)
                finally:
                    if busy:
                        busy.kill()
                        busy.wait()
                times[name][state].append(t)
                print(f"  {name:<20} {state:<6} run {rep + 1}: {t:.2f} s", file=sys.stderr, flush=True)

    def cell(v):
        return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"

    print(f"\nthreads {a.threads}, batch {a.batch_size}, {a.limit} images, busy loop on cpu {busy_cpu}"
          + (f", runs on cpus {a.cpus}" if cpus else "") + f"; median of {a.repeats} runs (range), seconds")
    print("| what | quiet | loaded | loaded / quiet |")
    print("| --- | ---: | ---: | ---: |")
    for name, _, _ in jobs:
        q, l = times[name]["quiet"], times[name]["loaded"]
        print(f"| {name} | {cell(q)} | {cell(l)} | {statistics.median(l) / statistics.median(q):.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "seconds": times}, f, indent=1)


if __name__ == "__main__":
    main()
