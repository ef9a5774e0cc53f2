"""ONNX export check, Python's side: every model kiln_onnx_driver exported must pass
onnx.checker.check_model (full_check: with ONNX's shape inference) and give kiln's predictions in
onnxruntime.

Metric, per output: err = max|onnx - kiln| / max|kiln| over all elements (the largest difference
relative to the output's largest magnitude), required <= 1e-5. Each model runs on the whole batch
kiln predicted and on its first two samples (the batch dimension is dynamic).

Usage: check_onnx.py DIR   (DIR holds manifest.json and the files it names)
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-5


def check_case(directory, case):
    path = os.path.join(directory, case["model"])
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == case["opset"], f"opset {opset}, expected {case['opset']}"
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param, "the batch dimension is not symbolic"

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: np.load(os.path.join(directory, f)) for n, f in zip(names, case["inputs"], strict=True)}
    expected = {o["name"]: np.load(os.path.join(directory, o["file"])) for o in case["outputs"]}
    worst = 0.0
    for rows in (None, 2):
        feed = {k: (v if rows is None else v[:rows]) for k, v in feeds.items()}
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
        for name, want in expected.items():
            want = want if rows is None else want[:rows]
            have = got[name]
            if have.shape != want.shape:
                print(f"  {case['name']}: output {name} has shape {have.shape}, kiln's {want.shape}")
                return float("inf")
            scale = float(np.max(np.abs(want)))
            err = float(np.max(np.abs(have.astype(np.float64) - want))) / (scale if scale > 0 else 1.0)
            worst = max(worst, err)
    return worst


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "manifest.json")) as f:
        cases = json.load(f)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    failed = []
    for case in cases:
        try:
            err = check_case(directory, case)
        except Exception as e:  # the checker's and onnxruntime's errors name what is wrong
            print(f"FAIL {case['name']}: {type(e).__name__}: {e}")
            failed.append(case["name"])
            continue
        ok = err <= TOLERANCE
        print(f"{'ok  ' if ok else 'FAIL'} {case['name']:28s} max relative error {err:.3e} (tolerance {TOLERANCE:g})")
        if not ok:
            failed.append(case["name"])
    if failed:
        print(f"onnx export: {len(failed)} of {len(cases)} models differ: {', '.join(failed)}")
        return 1
    print(f"onnx export: all {len(cases)} models agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
