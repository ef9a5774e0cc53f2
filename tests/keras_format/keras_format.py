"""Keras side of the .keras interchange check. For each case Keras builds and trains a model and
saves it; kiln (the driver) loads it, predicts, saves it back and trains one step on the same batch.
Checked: kiln's predictions equal Keras' (1e-5 relative); Keras loads kiln's file and predicts the
same and finds the same optimizer variables; .weights.h5 files go both ways; the step after loading (driven by the optimizer state
in the file) gives the same predictions on both sides, for the cases without Dropout.

Usage: keras_format.py --driver PATH --work DIR [CASE ...]
Exit status: 0 when every case agrees, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import keras
from keras import layers

RTOL = 1e-5  # relative to the largest magnitude of the compared tensor


def house_price(rng):
    # examples/house_price.cpp's seed model.
    model = keras.Sequential([keras.Input((1,)), layers.Dense(units=1)])
    model.compile(optimizer="sgd", loss="mean_squared_error")
    x = np.array([[1], [2], [3], [4], [5], [6]], np.float32)
    y = np.array([[5.0], [6.5], [8.0], [9.5], [11.0], [12.5]], np.float32)
    return model, x, y, 20, True


def cifar10(rng):
    # examples/cifar10.cpp's seed model, on a few random images.
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10)])
    model.compile(optimizer="Adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x = rng.random((10, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=10).astype(np.int32)
    return model, x, y, 3, True


def batchnorm_dropout(rng):
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        layers.Conv2D(8, (3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(16, activation="relu"),
        layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.003),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.random((12, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 4, size=12).astype(np.int32)
    # Dropout draws different masks in kiln and Keras: the step after loading is not compared.
    return model, x, y, 3, False


def residual(rng):
    inp = keras.Input((8, 8, 3), name="image")
    h = layers.Conv2D(8, (3, 3), padding="same", activation="relu")(inp)
    r = layers.Conv2D(8, (3, 3), padding="same")(h)
    h = layers.Activation("relu")(layers.Add()([h, r]))
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(3)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mse", metrics=["mae"])
    x = rng.random((6, 8, 8, 3), dtype=np.float32)
    y = rng.random((6, 3), dtype=np.float32)
    return model, x, y, 4, True


def layer_zoo(rng):
    # More of kiln's layers, and a learning-rate schedule (no learning-rate variable in the file).
    inp = keras.Input((8, 8, 3))
    h = layers.Rescaling(0.5, offset=0.1)(inp)
    h = layers.ZeroPadding2D(((1, 0), (0, 1)))(h)
    a = layers.Conv2D(4, (3, 3), strides=(1, 1), padding="valid", activation="tanh")(h)
    b = layers.Conv2D(4, (3, 3), padding="valid", activation="sigmoid", use_bias=False)(h)
    h = layers.Concatenate()([layers.Multiply()([a, b]), layers.Subtract()([a, b])])
    h = layers.AveragePooling2D((2, 2))(h)
    h = layers.Cropping2D(((0, 1), (1, 0)))(h)
    g = layers.GlobalMaxPooling2D()(h)
    f = layers.Reshape((-1,))(layers.Permute((2, 1, 3))(h))
    h = layers.Concatenate()([g, layers.Dense(5, activation="gelu")(f)])
    h = layers.Maximum()([layers.Dense(6, activation="elu")(h), layers.Dense(6, activation="silu")(h)])
    out = layers.Dense(3, activation="softmax")(layers.Average()([h, layers.Activation("swish")(h)]))
    model = keras.Model(inp, out)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=["categorical_accuracy"])
    x = rng.random((6, 8, 8, 3), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=6)]
    return model, x, y, 3, True


def muon_constraints(rng):
    # Muon's variables (a momentum per variable, a velocity only where it steps with AdamW) and
    # weight constraints in the config.
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(4, (3, 3), kernel_constraint=keras.constraints.UnitNorm(axis=[0, 1, 2])),
        layers.Flatten(),
        layers.Dense(8, activation="relu", kernel_constraint=keras.constraints.MaxNorm(1.5)),
        layers.Dense(3, bias_constraint=keras.constraints.NonNeg())])
    model.compile(optimizer=keras.optimizers.Muon(learning_rate=0.02, exclude_layers=["dense_1"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.random((6, 6, 6, 2), dtype=np.float32)
    y = rng.integers(0, 3, size=6).astype(np.int32)
    return model, x, y, 3, True


CASES = {"house_price": house_price, "cifar10": cifar10, "batchnorm_dropout": batchnorm_dropout,
         "residual": residual, "layer_zoo": layer_zoo, "muon_constraints": muon_constraints}


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def run_case(name, driver, work):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(7)
    model, x, y, steps, compare_step = CASES[name](rng)
    for _ in range(steps):
        model.train_on_batch(x, y)
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    keras_file, kiln_file = os.path.join(d, "keras.keras"), os.path.join(d, "kiln.keras")
    model.save(keras_file)
    model.save_weights(keras_file + ".weights.h5")
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    pred = model.predict(x, batch_size=len(x), verbose=0)
    opt_vars = [np.array(v) for v in model.optimizer.variables]
    run = subprocess.run([driver, keras_file, os.path.join(d, "x.npy"), os.path.join(d, "y.npy"), kiln_file,
                          os.path.join(d, "kiln_pred.npy"), os.path.join(d, "kiln_pred_after.npy")],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{name}: FAIL: the kiln driver exited {run.returncode}: {run.stderr.strip()}")
        return False
    results = {"kiln loads Keras' file: predictions": rel_diff(np.load(os.path.join(d, "kiln_pred.npy")), pred)}
    back = keras.saving.load_model(kiln_file)
    results["Keras loads kiln's file: predictions"] = rel_diff(back.predict(x, batch_size=len(x), verbose=0), pred)
    # kiln's .weights.h5 over a clone with fresh weights.
    fresh = keras.models.clone_model(model)
    fresh.load_weights(kiln_file + ".weights.h5")
    results["Keras loads kiln's .weights.h5: predictions"] = rel_diff(
        fresh.predict(x, batch_size=len(x), verbose=0), pred)
    back_vars = [np.array(v) for v in back.optimizer.variables]
    if len(back_vars) != len(opt_vars):
        results["Keras loads kiln's file: optimizer variables"] = float("inf")
    else:
        results["Keras loads kiln's file: optimizer variables"] = max(
            [rel_diff(a, b) for a, b in zip(back_vars, opt_vars)] + [0.0])
    if compare_step:
        model.train_on_batch(x, y)
        after = model.predict(x, batch_size=len(x), verbose=0)
        results["one step after kiln loads: predictions"] = rel_diff(
            np.load(os.path.join(d, "kiln_pred_after.npy")), after)
        back.train_on_batch(x, y)
        results["one step after Keras loads kiln's file: predictions"] = rel_diff(
            back.predict(x, batch_size=len(x), verbose=0), after)
    ok = True
    for what, diff in results.items():
        good = diff <= RTOL
        ok = ok and good
        print(f"{name}: {what}: relative difference {diff:.3g} {'ok' if good else 'FAIL (bound 1e-5)'}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    cases = args.cases or list(CASES)
    failed = [c for c in cases if not run_case(c, args.driver, args.work)]
    print(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
