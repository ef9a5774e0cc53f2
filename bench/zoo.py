#!/usr/bin/env python3
"""Runs the model zoo: kiln's bench_zoo against its PyTorch peer zoo_torch.py, model by model, and
prints one Markdown table of images/s (a training epoch's, median after a warm-up epoch).

Rows: each model x batch size x precision x device. GPU rows run kiln with its fastest algorithms (the default),
kiln with --op-determinism, PyTorch eager, torch.compile (default mode) and torch.compile
(mode="max-autotune"); CPU rows run kiln and PyTorch eager at each --threads count (default: 2 and
all cores; OMP_NUM_THREADS is set for both). Every run is its own process with a time limit, on the
same data shapes and sample count. The order alternates: kiln first on even rows, PyTorch first on
odd ones, so neither always meets the colder or the warmer machine; with --rounds N each kind runs N
times, the side going first alternating round by round, and a cell is the median run (every round's
figure is kept in the JSON), for machines whose speed wanders. A run that fails, times out or
finds no GPU becomes a line with the reason, never a crash; with --time-budget no run starts once the
budget is spent and the table says which rows are missing. --json writes every result (rewritten
after each row, so an interrupted call keeps what it measured); --table-from prints the table of one
or more such files (calls split to fit a machine's time limit make one table).

Math: float32 on both sides (TF32 off) unless --tf32, which turns it on for both. --precision takes
one or more of float32, mixed_bfloat16 and mixed_float16 (default float32), each its own rows: kiln's
global dtype policy (Keras' mixed precision, loss scaling for float16) against torch.autocast (a
GradScaler for float16), float32 weights and a float32 last layer on both sides. A row's ratios
compare kiln and PyTorch at the row's precision; "kiln mixed / kiln float32" divides a mixed row's
kiln figure by the float32 row's of the same device, threads, model and batch when both ran.
mixed_float16 is GPU-only here: the CPU has no mixed_float16 rows (its 16-bit type is bfloat16).
Reports without precisions (older JSON) are float32.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ["seed", "conv4", "vgg", "resnet20", "mlp", "wide", "allconv", "lenet5", "densenet"]
PRECISIONS = ["float32", "mixed_bfloat16", "mixed_float16"]
# Run kinds of a row: kiln's first, then PyTorch's. label: the table's column.
GPU_RUNS = ["kiln", "kiln-det", "eager", "compile", "max-autotune"]
CPU_RUNS = ["kiln", "eager"]
KILN_RUNS = {"kiln", "kiln-det"}
LABELS = {"kiln": "kiln", "kiln-det": "kiln det.", "eager": "torch eager", "compile": "torch.compile",
          "max-autotune": "max-autotune"}


def run_one(cmd, env, timeout, budget_cut=False):
    """Runs one benchmark process; returns its JSON line, or {'error': why there is none}. budget_cut:
    the limit `timeout` is what is left of the time budget, not --timeout."""
    if timeout <= 0:
        return {"error": "not run: time budget spent"}
    t0 = time.monotonic()
    try:
        # Its own session, so that a timeout also ends the compiler workers torch.compile starts.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    except OSError as e:
        return {"error": f"could not start {cmd[0]}: {e.strerror}"}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return {"error": f"stopped at the end of the time budget, after {timeout:.0f} s" if budget_cut
                else f"timed out after {timeout:.0f} s"}
    wall = time.monotonic() - t0
    load = os.getloadavg()[0]  # the 1-minute load at the end: others' work on a shared machine shows here
    last_err = (err.strip().splitlines() or ["no output"])[-1]
    if proc.returncode == 2:  # both programs' code for "no usable GPU"
        return {"error": "skipped: " + last_err, "skipped": True}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {last_err}", "stderr": err[-4000:]}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    try:
        result = json.loads(lines[-1])
        float(result["images_per_s"])
    except (IndexError, ValueError, KeyError, TypeError):
        return {"error": "no JSON result line in the output", "stdout": out[-2000:], "stderr": err[-2000:]}
    result["wall_s"] = round(wall, 2)
    result["load_1min"] = round(load, 2)
    return result


def command(kind, device, model, batch, threads, precision, args):
    common = ["--model", model, "--device", device, "--batch-size", str(batch), "--samples", str(args.samples[device]),
              "--epochs", str(args.epochs[device]), "--threads", str(threads), "--seed", str(args.seed),
              "--precision", precision]
    if args.tf32:
        common.append("--tf32")
    if kind in KILN_RUNS:
        return [args.bench_zoo] + common + (["--op-determinism"] if kind == "kiln-det" else [])
    return [args.python, args.torch_script] + common + ["--mode", kind]


def median_run(results):
    """The run of median images/s among one kind's rounds (the lower of the two middle ones for an even
    count, so that it is a run that happened), with every round's figure in images_per_s_rounds (None
    for a round that failed); the first error when no round succeeded."""
    ok = sorted((r for r in results if "error" not in r), key=lambda r: r["images_per_s"])
    if not ok:
        return results[0]
    if len(results) == 1:
        return ok[0]
    return {**ok[(len(ok) - 1) // 2], "images_per_s_rounds": [ips(r) for r in results]}


def run_row(device, model, batch, threads, precision, kinds, first_kiln, args, deadline, skipped):
    """Runs a row's kinds --rounds times, the side that goes first alternating round by round; each kind
    keeps its median run (median_run)."""
    env = dict(os.environ)
    if device == "cpu":  # both runtimes size their thread pools from this too
        env["OMP_NUM_THREADS"] = str(threads)
    kiln_kinds = [k for k in kinds if k in KILN_RUNS]
    peer_kinds = [k for k in kinds if k not in KILN_RUNS]
    results = {kind: [] for kind in kinds}
    for round_index in range(args.rounds):
        kiln_first = first_kiln == (round_index % 2 == 0)
        for kind in kiln_kinds + peer_kinds if kiln_first else peer_kinds + kiln_kinds:
            side = "kiln" if kind in KILN_RUNS else "torch"
            if (device, side) in skipped:  # no GPU for this side: said once, not tried again
                results[kind].append({"error": skipped[(device, side)], "skipped": True})
                continue
            left = float("inf") if deadline is None else deadline - time.monotonic()
            r = run_one(command(kind, device, model, batch, threads, precision, args), env, min(args.timeout, left),
                        budget_cut=left < args.timeout)
            results[kind].append(r)
            if r.get("skipped"):
                skipped[(device, side)] = r["error"]
            print(f"  {device} {model} batch {batch}" + (f" threads {threads}" if device == "cpu" else "")
                  + f" {precision} {kind}" + (f" round {round_index + 1}" if args.rounds > 1 else "") + ": "
                  + (r.get("error") or f"{r['images_per_s']:,.0f} images/s"
                     + (f" (compile {r['compile_s']:.1f} s)" if r.get("compile_s") else "")),
                  file=sys.stderr, flush=True)
    return {"device": device, "threads": threads if device == "cpu" else None, "model": model, "batch_size": batch,
            "precision": precision, "order": "kiln first" if first_kiln else "torch first",
            "runs": {kind: median_run(results[kind]) for kind in kinds}}


def ips(r):
    return None if r is None or "error" in r else r["images_per_s"]


def fmt(v):
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def ratio(a, b):
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


def settings_line(report):
    devices = [d for d in ("gpu", "cpu") if any(row["device"] == d for row in report["rows"])] or ["gpu", "cpu"]
    return ("samples per epoch " + ", ".join(f"{report['samples'][d]} ({d})" for d in devices)
            + "; timed epochs " + ", ".join(f"{report['epochs'][d]} ({d})" for d in devices)
            + " (images/s of the median epoch after a warm-up epoch)"
            + (f"; each cell the median of {report['rounds']} runs, the side going first alternating"
               if report.get("rounds", 1) != 1 else ""))


def precision_of(row):
    """A row's precision; rows of reports written before --precision existed ran float32."""
    return row.get("precision", "float32")


def row_key(row):
    """What a mixed row and its float32 row share: device, threads (CPU), model and batch."""
    return row["device"], row["threads"] if row["device"] == "cpu" else None, row["model"], row["batch_size"]


def float32_kiln(rows):
    """kiln's images/s of every float32 row, by row_key (the first figure where a key repeats)."""
    found = {}
    for row in rows:
        if precision_of(row) == "float32" and found.get(row_key(row)) is None:
            found[row_key(row)] = ips(row["runs"].get("kiln"))
    return found


def row_cells(row, kiln_float32=None):
    """Every column's cell of one row: images/s, ratios and compile times. kiln_float32: kiln's images/s
    of the float32 row with the same row_key (for a mixed row's "kiln mixed / kiln float32")."""
    runs = row["runs"]
    get = {k: ips(runs.get(k)) for k in GPU_RUNS}
    compiled = [v for v in (get["compile"], get["max-autotune"]) if v is not None]
    comp = [runs.get(k, {}).get("compile_s") for k in ("compile", "max-autotune")]
    mixed = precision_of(row) != "float32"
    return {"device": row["device"], "threads": row["threads"] if row["device"] == "cpu" else "-",
            "model": row["model"], "batch": str(row["batch_size"]), "precision": precision_of(row),
            **{LABELS[k]: fmt(get[k]) for k in GPU_RUNS},
            "kiln mixed / kiln float32": ratio(get["kiln"], kiln_float32) if mixed else "-",
            "kiln / eager": ratio(get["kiln"], get["eager"]),
            "kiln / best compile": ratio(get["kiln"], max(compiled) if compiled else None),
            "det. / fast": ratio(get["kiln-det"], get["kiln"]),
            "compile s (default / max-autotune)":
                " / ".join("-" if c is None else f"{c:.1f}" for c in comp) if any(c is not None for c in comp) else "-"}


# Columns shown when any row ran the run kinds they need (a CPU-only table has no compile columns);
# MIXED: when any row ran a mixed precision. The columns before "kiln" name the row.
MIXED = "mixed"
COLUMNS = [("device", None), ("threads", None), ("model", None), ("batch", None), ("precision", None), ("kiln", None),
           ("kiln det.", {"kiln-det"}), ("torch eager", {"eager"}), ("torch.compile", {"compile"}),
           ("max-autotune", {"max-autotune"}), ("kiln / eager", {"eager"}),
           ("kiln / best compile", {"compile", "max-autotune"}), ("det. / fast", {"kiln-det"}),
           ("kiln mixed / kiln float32", MIXED), ("compile s (default / max-autotune)", {"compile", "max-autotune"})]


def math_line(report):
    """The header's line on the arithmetic: TF32, and the precisions of the rows (those asked for when no
    row ran)."""
    precisions = list(dict.fromkeys(precision_of(row) for row in report["rows"])) or report.get("precisions",
                                                                                              ["float32"])
    if precisions == ["float32"]:
        return "math: " + ("TF32 on both sides (GPU)" if report.get("tf32") else "float32 on both sides (no TF32)")
    return ("math: precisions " + ", ".join(precisions) + " on both sides (mixed: kiln's dtype policy against "
            "torch.autocast; float32 weights and last layer" + ("; loss scaling for float16" if "mixed_float16" in
                                                                precisions else "")
            + "); float32 matmuls " + ("as TF32 (GPU)" if report.get("tf32") else "without TF32"))


def table(report):
    """The Markdown table of a report (the dict --json writes)."""
    rows = report["rows"]
    ran = {k for row in rows for k in row["runs"]}
    any_mixed = any(precision_of(row) != "float32" for row in rows)
    columns = [name for name, needs in COLUMNS
               if needs is None or (any_mixed if needs == MIXED else bool(needs & ran))]
    lines = [f"{report['date']}, {report['machine']}, commit {report.get('commit') or 'unknown'}",
             f"command: {report['command']}",
             math_line(report) + "; " + settings_line(report),
             "",
             "| " + " | ".join(columns) + " |",
             "| " + " | ".join("---" if c in ("device", "model", "precision") else "---:" for c in columns) + " |"]
    key_columns = columns.index("kiln")
    base = float32_kiln(rows)
    for row in rows:
        cells = row_cells(row, base.get(row_key(row)))
        lines.append("| " + " | ".join(str(cells[c]) for c in columns) + " |")
        for kind in GPU_RUNS:  # a run without a figure: a line with the reason, under the figures' columns
            if kind in row["runs"] and "error" in row["runs"][kind]:
                reason = row["runs"][kind]["error"].replace("|", "/")
                cells = [""] * key_columns + [f"{LABELS[kind]}: {reason}"] + [""] * (len(columns) - key_columns - 1)
                lines.append("| " + " | ".join(cells) + " |")
    for note in report.get("notes", []):
        lines += ["", note]
    if report.get("missing"):
        lines += ["", f"not run (time budget of {report['time_budget']} s spent): "
                  + ", ".join(report["missing"])]
    return "\n".join(lines)


def machine_line(rows):
    gpu = next((r["gpu"] for row in rows for r in row["runs"].values() if r.get("gpu")), None)
    torch_version = next((r["torch"] for row in rows for r in row["runs"].values() if r.get("torch")), None)
    parts = [gpu or "no GPU", f"{os.cpu_count()} CPU cores ({platform.machine()})"]
    if torch_version:
        parts.append(f"PyTorch {torch_version}")
    return ", ".join(parts)


def save(report, path, start):
    report["machine"] = machine_line(report["rows"])
    report["elapsed_s"] = round(time.monotonic() - start, 1)
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)


def merge(reports):
    """One report of several --json files (calls split to fit a time limit): their rows in order."""
    merged = dict(reports[0])
    for key in ("rows", "missing"):
        merged[key] = [x for r in reports for x in r.get(key, [])]
    merged["notes"] = list(dict.fromkeys(x for r in reports for x in r.get("notes", [])))
    merged["precisions"] = list(dict.fromkeys(x for r in reports for x in r.get("precisions", ["float32"])))
    for key in ("samples", "epochs"):  # per device, from the reports that have rows of that device
        merged[key] = dict(reports[0][key])
        for d in merged[key]:
            values = dict.fromkeys(str(r[key][d]) for r in reports if any(row["device"] == d for row in r["rows"]))
            if values:
                merged[key][d] = " / ".join(values)
    merged["command"] = " ; ".join(dict.fromkeys(r["command"] for r in reports))
    for key in ("date", "commit", "machine"):
        merged[key] = " / ".join(dict.fromkeys(str(r.get(key)) for r in reports))
    merged["time_budget"] = " / ".join(dict.fromkeys(str(r.get("time_budget")) for r in reports))
    rounds = list(dict.fromkeys(r.get("rounds", 1) for r in reports))
    merged["rounds"] = rounds[0] if len(rounds) == 1 else " / ".join(map(str, rounds))
    return merged


def git_commit():
    # A copy of the tree without its .git (a benchmark machine) names its commit in KILN_COMMIT.
    if os.environ.get("KILN_COMMIT"):
        return os.environ["KILN_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "") or None
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, metavar="MODEL",
                   help=f"any of {' '.join(MODELS)} (default: all)")
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512],
                   help="batch sizes, any positive ones (default: 32 128 512; e.g. --batches 2048 for the seed model's "
                        "large-batch row)")
    p.add_argument("--precision", nargs="+", default=["float32"], choices=PRECISIONS, metavar="PRECISION",
                   help=f"any of {' '.join(PRECISIONS)}, each its own rows (default: float32); mixed_float16 has GPU "
                        "rows only")
    p.add_argument("--device", choices=["cpu", "gpu", "all"], default="all",
                   help="all: the GPU rows, then the CPU rows (default)")
    p.add_argument("--threads", type=int, nargs="+", default=[2, os.cpu_count()],
                   help="CPU thread counts (default: 2 and all cores)")
    p.add_argument("--samples", type=int, default=0,
                   help="images per epoch (default: 10240 on the GPU, 2048 on the CPU)")
    p.add_argument("--epochs", type=int, default=0,
                   help="timed epochs after the warm-up epoch (default: 5 on the GPU, 3 on the CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1,
                   help="runs of each kind per row, the side going first alternating; a cell is the median run "
                        "(default 1; more on a machine whose speed wanders)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one run may take (default 600)")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds for the whole call: no run starts after it, and a run's limit ends with it; the rows "
                        "not run are listed (default: none)")
    p.add_argument("--skip-compile", action="store_true", help="no torch.compile runs (default and max-autotune)")
    p.add_argument("--skip-max-autotune", action="store_true",
                   help="no torch.compile max-autotune runs (their compilation takes about a minute per row)")
    p.add_argument("--skip-determinism", action="store_true", help="no kiln --op-determinism runs")
    p.add_argument("--tf32", action="store_true", help="TF32 for GPU matmuls and convolutions on both sides")
    p.add_argument("--bench-zoo", default=os.path.join(ROOT, "build-bench", "bench", "bench_zoo"))
    p.add_argument("--torch-script", default=os.path.join(HERE, "zoo", "zoo_torch.py"))
    p.add_argument("--python", default=sys.executable, help="the Python with PyTorch")
    p.add_argument("--json", default="", help="write every result here (after each row)")
    p.add_argument("--table-from", nargs="+", default=[], metavar="JSON",
                   help="only print the table of files written by --json (several: their rows in one table)")
    args = p.parse_args()

    if args.table_from:
        reports = []
        for path in args.table_from:
            try:
                with open(path) as f:
                    reports.append(json.load(f))
            except (OSError, ValueError) as e:
                print(f"zoo.py: cannot read a report from {path}: {e}", file=sys.stderr)
                return 1
        try:
            print(table(merge(reports)))
        except (KeyError, TypeError) as e:
            print(f"zoo.py: {' '.join(args.table_from)} is not a report of zoo.py --json (no {e})", file=sys.stderr)
            return 1
        return 0
    if min(args.batches + args.threads + [args.rounds]) < 1 or args.samples < 0 or args.epochs < 0:
        p.error("--batches, --threads and --rounds must be positive, --samples and --epochs not negative")
    args.samples = {"gpu": args.samples or 10240, "cpu": args.samples or 2048}
    args.epochs = {"gpu": args.epochs or 5, "cpu": args.epochs or 3}
    if not os.path.isfile(args.bench_zoo):
        print(f"zoo.py: no bench_zoo at {args.bench_zoo} (build it with -DKILN_BUILD_BENCH=ON, or pass --bench-zoo); "
              "its runs will fail", file=sys.stderr)

    gpu_kinds = [k for k in GPU_RUNS if not (args.skip_compile and k in ("compile", "max-autotune"))
                 and not (args.skip_max_autotune and k == "max-autotune")
                 and not (args.skip_determinism and k == "kiln-det")]
    precisions = list(dict.fromkeys(args.precision))
    # mixed_float16 is the zoo's GPU-only precision (bfloat16 is the CPU's 16-bit compute type; zoo_torch.py
    # refuses float16 there), so the CPU gets the other precisions.
    cpu_precisions = [q for q in precisions if q != "mixed_float16"]
    plan = []  # (device, model, batch, threads, precision, kinds); a model's precisions side by side
    if args.device in ("gpu", "all"):
        # GPU rows: both sides keep every core for their host work (the CPU rows' --threads is CPU-only).
        plan += [("gpu", m, b, os.cpu_count(), q, gpu_kinds) for m in args.models for b in args.batches
                 for q in precisions]
    if args.device in ("cpu", "all"):
        plan += [("cpu", m, b, t, q, CPU_RUNS) for t in dict.fromkeys(args.threads) for m in args.models
                 for b in args.batches for q in cpu_precisions]

    start = time.monotonic()
    deadline = start + args.time_budget if args.time_budget > 0 else None
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": " ".join(["bench/zoo.py"] + sys.argv[1:]), "commit": git_commit(), "machine": "",
              "tf32": args.tf32, "precisions": precisions, "samples": args.samples, "epochs": args.epochs,
              "rounds": args.rounds,
              "time_budget": args.time_budget, "rows": [], "missing": [], "notes": []}
    if args.device in ("cpu", "all") and len(cpu_precisions) < len(precisions):
        report["notes"].append("cpu mixed_float16 rows not run: mixed_float16 is GPU-only in the model zoo")
    skipped = {}
    for i, (device, model, batch, threads, precision, kinds) in enumerate(plan):
        if deadline is not None and time.monotonic() >= deadline:
            report["missing"] = [f"{d} {m} batch {b}" + (f" threads {t}" if d == "cpu" else "") + f" {q}"
                                 for d, m, b, t, q, _ in plan[i:]]
            print(f"zoo.py: time budget spent; {len(plan) - i} rows not run", file=sys.stderr)
            break
        row = run_row(device, model, batch, threads, precision, kinds, i % 2 == 0, args, deadline, skipped)
        if all(r.get("skipped") for r in row["runs"].values()):  # e.g. no GPU here: a note, not rows
            reasons = dict.fromkeys(r["error"].removeprefix("skipped: ") for r in row["runs"].values())
            note = f"{device} rows skipped: " + "; ".join(sorted(reasons))  # sorted: one note whatever ran first
            if note not in report["notes"]:
                report["notes"].append(note)
            continue
        report["rows"].append(row)
        save(report, args.json, start)
    save(report, args.json, start)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
