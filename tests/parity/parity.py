"""Keras side of the parity check: trains each case in real Keras and in kiln (kiln_parity_driver)
from the same initial weights on the same batches, then compares the per-step losses, the final
weights and the predictions, and prints the worst difference of every case.

Usage: parity.py --driver PATH --work DIR [--cifar DIR] [CASE ...]
Exit status: 0 when every case that ran agrees, 1 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the table
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from safetensors.numpy import load_file, save_file

import keras
import tensorflow as tf
from keras import layers

tf.get_logger().setLevel("ERROR")  # retracing notices from predict on new shapes

# The bound: per-step losses agree to 1e-4 relative (float32, CPU).
LOSS_RTOL = 1e-4
# Final weights and predictions, relative to the largest magnitude of the tensor compared: 20
# float32 steps reordered differently on each side stay far below this.
TENSOR_RTOL = 1e-4
# Cases under a mixed policy (bfloat16 compute). The yardstick is Keras itself: what separates
# Keras' mixed run from Keras' float32 run of the same case (the gap) is what bfloat16 rounding
# moves each quantity by, and kiln's mixed run must sit within MIXED_GAP_FRACTION of that gap from
# Keras' mixed run. Where the gap is small the bound does not go below one bfloat16 ulp (BF16_ULP,
# 2^-7 relative) of what bfloat16 touched: two valid bfloat16 evaluations of one value round to
# neighbours when their float32 values straddle a rounding point, and TensorFlow rounds some
# bfloat16 ops in steps where kiln rounds once (measured: TensorFlow's bfloat16 BiasAddGrad is 0.11
# of the scale off the exact sum over 10x30x30 cells, kiln's is the exact sum rounded once; through
# the softmax-from-probabilities gradient the two differ by 1-4 ulps in 3 of 64 entries). So: the
# predictions (bfloat16 values) within one ulp of their scale; each final weight within one ulp of
# its update (max |w_final - w_initial|: the gradients are bfloat16, the initial weights exact);
# the loss (float32 on bit-identical logits) within LOSS_RTOL; nothing above MIXED_RTOL.
# Measured figures: tests/parity/README.md.
MIXED_GAP_FRACTION = 0.25
BF16_ULP = 2.0 ** -7
MIXED_RTOL = 2e-2
# The house-price seed's own check: predict(7.0) within 1e-3 of Keras'.
HOUSE_PRICE_ATOL = 1e-3

# kiln names layers as Keras does within one model: the class name in snake_case (MaxPooling2D ->
# max_pooling2d; Keras' to_snake_case, which src/model/graph.cpp's snake_case follows), then dense,
# dense_1, ...
def base_name(cls):
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls)).lower()


def sequential(input_shape, specs):
    """A Keras Sequential of (class, args, kwargs) specs, named the way kiln names them."""
    used, built = {}, [keras.Input(shape=input_shape)]
    for cls, args, kwargs in specs:
        base = base_name(cls)
        n = used.get(base, 0)
        used[base] = n + 1
        built.append(getattr(layers, cls)(*args, name=base if n == 0 else f"{base}_{n}", **kwargs))
    return keras.Sequential(built)


def scce(from_logits=False):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def classes(rng, n, k):
    return rng.integers(0, k, size=n).astype(np.int32)


def normal(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def cifar10_slice(cifar_dir, n=200):
    """The first n records of data_batch_1.bin as NHWC float32 / 255 and int32 labels."""
    path = os.path.join(cifar_dir, "cifar-10-batches-bin", "data_batch_1.bin")
    raw = np.fromfile(path, dtype=np.uint8, count=n * 3073).reshape(n, 3073)
    x = raw[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / np.float32(255.0)
    return x, raw[:, 0].astype(np.int32)


# Each case: model (Keras), optimizer, loss, batch size, data(rng, cifar_dir) -> (x, y, x_pred),
# and epochs when it trains with fit. The kiln side is in parity_driver.cpp under the same name.
CASES = {
    "house_price": dict(
        model=lambda: sequential((1,), [("Dense", (1,), {})]),
        optimizer=lambda: "sgd", loss=lambda: "mean_squared_error", batch=6, epochs=1000,
        data=lambda rng, _: (np.arange(1, 7, dtype=np.float32).reshape(6, 1),
                             np.array([5.0, 6.5, 8.0, 9.5, 11.0, 12.5], np.float32),
                             np.array([[7.0]], np.float32))),
    "cifar10_cnn": dict(
        model=lambda: sequential((32, 32, 3), [
            ("Conv2D", (32, (3, 3)), dict(activation="relu")), ("MaxPooling2D", ((2, 2),), {}),
            ("Flatten", (), {}), ("Dense", (64,), dict(activation="relu")), ("Dense", (10,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=10, needs_cifar=True,
        # Adam moves a weight by up to lr per step whatever its gradient's size, so the few of the
        # 460,800 dense/kernel entries whose gradient sits near Adam's epsilon scale (~3e-6) turn
        # last-ulp gradient differences into visible weight differences (measured: 5.6e-3 of the
        # tensor's scale on ~300 entries; losses and predictions still agree within 1e-4).
        weights_rtol=1e-2,
        data=lambda rng, d: (*cifar10_slice(d), None)),
    "conv_same_strides2": dict(
        model=lambda: sequential((10, 11, 3), [
            ("Conv2D", (8, (3, 3)), dict(strides=(2, 2), padding="same", activation="relu")),
            ("Flatten", (), {}), ("Dense", (5,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 10, 11, 3), classes(rng, 160, 5), None)),
    "maxpool_strides": dict(
        model=lambda: sequential((13, 13, 2), [
            ("Conv2D", (6, (3, 3)), dict(activation="relu")),
            ("MaxPooling2D", ((3, 3),), dict(strides=(2, 2))), ("Flatten", (), {}), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 13, 13, 2), classes(rng, 160, 4), None)),
    "maxpool_same": dict(
        model=lambda: sequential((12, 11, 2), [
            ("Conv2D", (4, (3, 3)), dict(activation="tanh")),
            ("MaxPooling2D", ((3, 3),), dict(strides=(2, 2), padding="same")),
            ("Flatten", (), {}), ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 12, 11, 2), classes(rng, 160, 3), None)),
    "dense_sigmoid_momentum": dict(
        model=lambda: sequential((5,), [("Dense", (8,), dict(activation="sigmoid")), ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        loss=lambda: keras.losses.MeanSquaredError(), batch=4,
        data=lambda rng, _: (normal(rng, 80, 5), normal(rng, 80, 3), None)),
    "dense_tanh_nesterov": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="tanh")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
        loss=lambda: keras.losses.MeanSquaredError(), batch=5,
        data=lambda rng, _: (normal(rng, 100, 6), normal(rng, 100, 2), None)),
    "mse_multi_output": dict(
        model=lambda: sequential((4,), [("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.SGD(), loss=lambda: keras.losses.MeanSquaredError(), batch=5,
        data=lambda rng, _: (normal(rng, 100, 4), normal(rng, 100, 3, scale=3.0), None)),
    "softmax_crossentropy": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")),
                                        ("Dense", (4,), dict(activation="softmax"))]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(False), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    # Large inputs make the softmax confident: some true-class probabilities fall below 1e-7,
    # where clipping the probabilities and using the logits give different losses.
    "softmax_crossentropy_confident": dict(
        model=lambda: sequential((8,), [("Dense", (4,), dict(activation="softmax"))]),
        optimizer=lambda: keras.optimizers.SGD(), loss=lambda: scce(False), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8, scale=20.0), classes(rng, 160, 4), None)),
    # The output activation and the loss disagree. Keras keeps the pre-activation values of a softmax
    # or sigmoid output and uses them as the cross-entropy's logits whatever from_logits says, and
    # warns when from_logits=True (checked: kiln warns exactly when Keras does).
    "sigmoid_crossentropy": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")),
                                        ("Dense", (4,), dict(activation="sigmoid"))]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(False), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "softmax_crossentropy_from_logits": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")),
                                        ("Dense", (4,), dict(activation="softmax"))]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "sigmoid_crossentropy_from_logits": dict(
        model=lambda: sequential((8,), [("Dense", (4,), dict(activation="sigmoid"))]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8, scale=3.0), classes(rng, 160, 4), None)),
    # BatchNormalization trains on each batch's statistics and updates its moving ones (compared as
    # weights); the predictions after training use the moving ones. Inputs off zero and of uneven
    # scale, so that both statistics matter. No bias on the Dense before it (Keras' own pattern): the
    # normalization's gradient sums to zero over the batch, so the bias of a unit whose ReLU passes
    # every row of a batch has a gradient of exactly zero, and Adam divides its rounding noise by
    # epsilon into full-size steps, whichever order kiln sums the gradient in (README.md), which no
    # relative comparison can judge.
    "dense_batchnorm": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="relu", use_bias=False)),
                                        ("BatchNormalization", (), {}),
                                        ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 6, scale=2.0) + np.float32(1.5), classes(rng, 160, 3), None)),
    # No bias on the convolution (Keras' own pattern before BatchNormalization): the normalization
    # subtracts each channel's mean, so such a bias has a gradient of exactly zero and its trained
    # value is rounding noise (measured ~1e-8 on both sides), which no relative comparison can judge.
    "conv_batchnorm": dict(
        model=lambda: sequential((9, 9, 2), [
            ("Conv2D", (4, (3, 3)), dict(use_bias=False)),
            ("BatchNormalization", (), dict(momentum=0.9, epsilon=1e-2)),
            ("MaxPooling2D", ((2, 2),), {}), ("Flatten", (), {}), ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 9, 9, 2) * np.float32([1.0, 3.0]) + np.float32([0.5, -2.0]),
                             classes(rng, 160, 3), None)),
    # Average pooling with "same" padding on an odd size (edge windows average fewer cells), then
    # global average pooling and the exact (erf) gelu in a convolution and a Dense.
    "avgpool_gap_gelu": dict(
        model=lambda: sequential((12, 11, 3), [
            ("Conv2D", (6, (3, 3)), dict(activation="relu")),
            ("AveragePooling2D", ((3, 3),), dict(strides=(2, 2), padding="same")),
            ("Conv2D", (8, (3, 3)), dict(padding="same", activation="gelu")),
            ("GlobalAveragePooling2D", (), {}), ("Dense", (8,), dict(activation="gelu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 12, 11, 3), classes(rng, 160, 4), None)),
    # Activation layers (silu, its alias swish), elu and leaky_relu (Keras' slope 0.2) as layer
    # options, and global max pooling that keeps its dimensions.
    "activation_layers": dict(
        model=lambda: sequential((10, 10, 2), [
            ("Conv2D", (6, (3, 3)), {}), ("Activation", ("silu",), {}), ("AveragePooling2D", ((2, 2),), {}),
            ("Conv2D", (6, (3, 3)), dict(activation="elu")), ("GlobalMaxPooling2D", (), dict(keepdims=True)),
            ("Flatten", (), {}), ("Dense", (8,), dict(activation="leaky_relu")), ("Activation", ("swish",), {}),
            ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 10, 10, 2), classes(rng, 160, 3), None)),
    # Reshaping layers between a convolution and a Dense: asymmetric zero padding and cropping,
    # a Reshape with an inferred dimension, and a Permute that transposes each sample.
    "reshaping_layers": dict(
        model=lambda: sequential((7, 6, 2), [
            ("Conv2D", (4, (3, 3)), dict(activation="relu")), ("ZeroPadding2D", (((1, 2), (0, 1)),), {}),
            ("Cropping2D", (((2, 0), (1, 1)),), {}), ("Reshape", ((-1, 8),), {}), ("Permute", ((2, 1),), {}),
            ("Flatten", (), {}), ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 7, 6, 2), classes(rng, 160, 3), None)),
    # L2 penalties on kernels and a bias: the loss Keras reports includes them, and so do the gradients.
    "l2_regularizer": dict(
        model=lambda: sequential((7, 7, 2), [
            ("Conv2D", (4, (3, 3)), dict(activation="relu", kernel_regularizer=keras.regularizers.L2(0.02))),
            ("Flatten", (), {}),
            ("Dense", (8,), dict(activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01),
                                 bias_regularizer=keras.regularizers.L2(0.05))),
            ("Dense", (3,), dict(kernel_regularizer=keras.regularizers.L2(0.1)))]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 7, 7, 2), classes(rng, 160, 3), None)),
    # Preprocessing inside the model: pixels 0..255 rescaled, then normalized per channel by given
    # statistics (one variance 0: the 1e-7 floor of the standard deviation), before a convolution.
    "rescaling_normalization": dict(
        model=lambda: sequential((8, 8, 3), [
            ("Rescaling", (1.0 / 255,), dict(offset=-0.25)),
            ("Normalization", (), dict(mean=[0.2, 0.25, 0.3], variance=[0.08, 0.05, 0.0])),
            ("Conv2D", (4, (3, 3)), dict(activation="relu")), ("Flatten", (), {}), ("Dense", (3,), {})]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (np.where(rng.uniform(size=(160, 8, 8, 3)) < 0.02, np.float32(63.75),
                                      rng.uniform(0, 255, size=(160, 8, 8, 3))).astype(np.float32),
                             classes(rng, 160, 3), None)),
    # The one-hot cross-entropy with label smoothing: from a softmax output (scored from its logits)
    # and from logits; float32 one-hot targets.
    "cce_label_smoothing": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")),
                                        ("Dense", (4,), dict(activation="softmax"))]),
        optimizer=lambda: keras.optimizers.Adam(),
        loss=lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), np.eye(4, dtype=np.float32)[classes(rng, 160, 4)], None)),
    "cce_label_smoothing_from_logits": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1),
        loss=lambda: keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), np.eye(4, dtype=np.float32)[classes(rng, 160, 4)], None)),
    # Binary cross-entropy: three sigmoid outputs (scored from their logits), and one logit against
    # [N] targets (Keras expands them to [N, 1]) with label smoothing.
    "bce_sigmoid": dict(
        model=lambda: sequential((8,), [("Dense", (8,), dict(activation="relu")),
                                        ("Dense", (3,), dict(activation="sigmoid"))]),
        optimizer=lambda: keras.optimizers.Adam(), loss=lambda: keras.losses.BinaryCrossentropy(), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), rng.integers(0, 2, size=(160, 3)).astype(np.float32), None)),
    "bce_from_logits": dict(
        model=lambda: sequential((8,), [("Dense", (1,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1),
        loss=lambda: keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8, scale=2.0), rng.integers(0, 2, size=160).astype(np.float32), None)),
    # Regression losses by name and with an option.
    "mae": dict(
        model=lambda: sequential((8,), [("Dense", (8,), dict(activation="relu")), ("Dense", (1,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05), loss=lambda: "mae", batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), normal(rng, 160, scale=2.0), None)),
    "huber": dict(
        model=lambda: sequential((8,), [("Dense", (8,), dict(activation="relu")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.Adam(learning_rate=0.01), loss=lambda: keras.losses.Huber(delta=0.5),
        batch=8, data=lambda rng, _: (normal(rng, 160, 8), normal(rng, 160, 2, scale=2.0), None)),
    # Optimizers, weight decay, clipping, schedules and EMA: 20 steps of a small classifier each.
    "opt_adamw": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05), loss=lambda: scce(True),
        batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_sgd_nesterov_weight_decay": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="tanh")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        loss=lambda: keras.losses.MeanSquaredError(), batch=8,
        data=lambda rng, _: (normal(rng, 160, 6), normal(rng, 160, 2), None)),
    "opt_rmsprop_centered": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.RMSprop(learning_rate=0.01, centered=True), loss=lambda: scce(True),
        batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_rmsprop_momentum": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.RMSprop(learning_rate=0.005, momentum=0.9, centered=True),
        loss=lambda: scce(True), batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_adagrad": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Adagrad(learning_rate=0.1), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_muon": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Muon(learning_rate=0.01), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_muon_options": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Muon(
            learning_rate=0.02, adam_weight_decay=None, weight_decay=0.01, exclude_layers=["dense_1"],
            adam_lr_ratio=0.1, momentum=0.9, ns_steps=3, nesterov=False, rms_rate=None),
        loss=lambda: scce(True), batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "constraints": dict(
        model=lambda: sequential((8,), [
            ("Dense", (16,), dict(activation="relu", kernel_constraint=keras.constraints.UnitNorm())),
            ("Dense", (4,), dict(kernel_constraint=keras.constraints.MaxNorm(0.5),
                                 bias_constraint=keras.constraints.NonNeg()))]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_cosine_warmup": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=15, alpha=0.1, warmup_target=0.01, warmup_steps=5)),
        loss=lambda: scce(True), batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
    "opt_sgd_clipnorm": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="relu")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, clipnorm=0.5),
        loss=lambda: keras.losses.MeanSquaredError(), batch=8,
        data=lambda rng, _: (normal(rng, 160, 6), normal(rng, 160, 2, scale=4.0), None)),
    "opt_adam_global_clipnorm": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.Adam(learning_rate=0.01, global_clipnorm=0.3), loss=lambda: scce(True),
        batch=8, data=lambda rng, _: (normal(rng, 160, 8, scale=3.0), classes(rng, 160, 4), None)),
    "opt_sgd_clipvalue": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="relu")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, clipvalue=0.1),
        loss=lambda: keras.losses.MeanSquaredError(), batch=8,
        data=lambda rng, _: (normal(rng, 160, 6), normal(rng, 160, 2, scale=4.0), None)),
    # The harness trains with train_on_batch, which never swaps in the average at the end; an
    # overwrite every 5 steps puts the moving average into the weights both sides compare.
    "opt_ema_overwrite": dict(
        model=lambda: sequential((8,), [("Dense", (16,), dict(activation="relu")), ("Dense", (4,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, use_ema=True, ema_momentum=0.9,
                                               ema_overwrite_frequency=5),
        loss=lambda: scce(True), batch=8, data=lambda rng, _: (normal(rng, 160, 8), classes(rng, 160, 4), None)),
}

# Functional models, their layers named as the kiln side names them.
def residual_block():
    """Conv-BN-ReLU-Conv-BN, an Add shortcut from the input, ReLU, then a classifier head."""
    x = keras.Input(shape=(8, 8, 4))
    h = layers.Conv2D(4, (3, 3), padding="same", use_bias=False, name="conv2d")(x)
    h = layers.BatchNormalization(name="batch_normalization")(h)
    h = layers.Activation("relu", name="activation")(h)
    h = layers.Conv2D(4, (3, 3), padding="same", use_bias=False, name="conv2d_1")(h)
    h = layers.BatchNormalization(name="batch_normalization_1")(h)
    h = layers.Activation("relu", name="activation_1")(layers.Add(name="add")([x, h]))
    h = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(h)
    return keras.Model(x, layers.Dense(3, name="dense")(h))


def two_input_concatenate():
    """Two inputs, a Dense tower each, joined by Concatenate."""
    a, b = keras.Input(shape=(6,)), keras.Input(shape=(4,))
    ha = layers.Dense(5, activation="relu", name="dense")(a)
    hb = layers.Dense(5, activation="tanh", name="dense_1")(b)
    h = layers.Concatenate(name="concatenate")([ha, hb])
    return keras.Model([a, b], layers.Dense(3, name="dense_2")(h))


def shared_layer():
    """One Dense applied twice (one set of weights, gradients from both calls)."""
    x = keras.Input(shape=(6,))
    shared = layers.Dense(6, activation="tanh", name="dense")
    h = shared(shared(x))
    return keras.Model(x, layers.Dense(3, name="dense_1")(h))


CASES.update({
    "functional_residual_block": dict(
        model=residual_block, optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 8, 8, 4) + np.float32(0.5), classes(rng, 160, 3), None)),
    "functional_two_inputs": dict(
        model=two_input_concatenate, optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: ([normal(rng, 160, 6), normal(rng, 160, 4)], classes(rng, 160, 3), None)),
    "functional_shared_layer": dict(
        model=shared_layer, optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True), batch=8,
        data=lambda rng, _: (normal(rng, 160, 6), classes(rng, 160, 3), None)),
})

# Callbacks in fit (shuffle=False): per-epoch losses, the epochs run and the final weights. The
# decisions do not hang on a loss's last digits: min_delta=1e9 makes every epoch a plateau, and
# mode="max" on a falling loss makes the first epoch the best.
CASES.update({
    "cb_reduce_lr_on_plateau": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="tanh")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1), loss=lambda: keras.losses.MeanSquaredError(),
        batch=8, epochs=8,
        callbacks=lambda: [keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.3, patience=1, min_delta=1e9,
                                                             cooldown=2, min_lr=0.004)],
        data=lambda rng, _: (normal(rng, 40, 6), normal(rng, 40, 2), None)),
    "cb_learning_rate_scheduler": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="tanh")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.Adam(learning_rate=0.01), loss=lambda: keras.losses.MeanSquaredError(),
        batch=8, epochs=6,
        callbacks=lambda: [keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.7)],
        data=lambda rng, _: (normal(rng, 40, 6), normal(rng, 40, 2), None)),
    "cb_early_stopping_restore": dict(
        model=lambda: sequential((6,), [("Dense", (8,), dict(activation="tanh")), ("Dense", (2,), {})]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.1), loss=lambda: keras.losses.MeanSquaredError(),
        batch=8, epochs=10,
        callbacks=lambda: [keras.callbacks.EarlyStopping(monitor="loss", mode="max", patience=2,
                                                         restore_best_weights=True)],
        data=lambda rng, _: (normal(rng, 40, 6), normal(rng, 40, 2), None)),
})


# Cases under a dtype policy: both sides build the model under it (Keras:
# keras.mixed_precision.set_global_policy, restored to float32 afterwards; kiln: the policy.txt
# written beside the inputs), so every layer computes in bfloat16 on float32 weights and the losses
# run in float32. They train 3 steps; an explicit seed keeps the other cases' data unchanged. Their
# tolerance is measured per run (see mixed_bounds).
CASES.update({
    "mixed_bf16_cifar10_cnn": dict(
        policy="mixed_bfloat16", seed=101, needs_cifar=True,
        model=CASES["cifar10_cnn"]["model"], optimizer=lambda: keras.optimizers.Adam(), loss=lambda: scce(True),
        batch=10, data=lambda rng, d: (*cifar10_slice(d, 30), None)),
    # BatchNormalization normalizes in float32 and hands bfloat16 on. The softmax head's output is
    # cast to float32 for the loss, and the cast drops the logits Keras keeps on an activation's
    # output: Keras scores the bfloat16 probabilities (renormalized, clipped; checked: its loss
    # 1.396409 on the first batch is that, not the logits' 1.396060), and kiln must too.
    "mixed_bf16_conv_batchnorm": dict(
        policy="mixed_bfloat16", seed=102,
        model=lambda: sequential((10, 10, 3), [
            ("Conv2D", (8, (3, 3)), dict(use_bias=False)), ("BatchNormalization", (), {}),
            ("Activation", ("relu",), {}), ("GlobalAveragePooling2D", (), {}),
            ("Dense", (4,), dict(activation="softmax"))]),
        optimizer=lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss=lambda: scce(False), batch=8,
        data=lambda rng, _: (normal(rng, 24, 10, 10, 3) * np.float32([1.0, 2.0, 0.5]) + np.float32([0.5, -1.0, 0.0]),
                             classes(rng, 24, 4), None)),
})

# Keras' warning for from_logits=True on an activation's output (keras/src/backend/tensorflow/nn.py).
LOGITS_WARNING = "received `from_logits=True`, but the `output` argument was produced by a"


def named_weights(model):
    return {f"{l.name}/{v.name}": np.asarray(v.numpy()) for l in model.layers for v in l.weights}


def rows(x, i, j):
    """Rows i:j of x, or of each input of a model of several inputs (x a list)."""
    return [t[i:j] for t in x] if isinstance(x, list) else x[i:j]


def save_inputs(directory, stem, x):
    """STEM.npy, or STEM_0.npy, STEM_1.npy, ... for a model of several inputs (read by the driver)."""
    for i, t in enumerate(x if isinstance(x, list) else [x]):
        np.save(os.path.join(directory, f"{stem}_{i}.npy" if isinstance(x, list) else f"{stem}.npy"), t)


class policy_scope:
    """keras.mixed_precision's global policy set to `policy` inside the block, float32 after it."""

    def __init__(self, policy):
        self.policy = policy or "float32"

    def __enter__(self):
        keras.mixed_precision.set_global_policy(self.policy)

    def __exit__(self, *exc):
        keras.mixed_precision.set_global_policy("float32")


def train_keras(case, model, x, y):
    """Per-step losses (the loss of each batch before its update), whether Keras warned that
    from_logits=True met an activation's output, and the trained model."""
    model.compile(optimizer=case["optimizer"](), loss=case["loss"](), jit_compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python shows a warning once per process; every case counts
        if case.get("epochs"):
            h = model.fit(x, y, batch_size=case["batch"], epochs=case["epochs"], shuffle=False, verbose=0,
                          callbacks=case.get("callbacks", list)())
            losses = np.asarray(h.history["loss"], np.float64)
        else:
            b = case["batch"]
            losses = np.array([model.train_on_batch(rows(x, i, i + b), y[i:i + b], return_dict=True)["loss"]
                               for i in range(0, len(y), b)], np.float64)
    return losses, any(LOGITS_WARNING in str(w.message) for w in caught)


def keras_float32_reference(case, initial, x, y, x_pred):
    """The same case trained in Keras without its policy (float32 throughout) from the same initial
    weights: losses, final weights and predictions, the yardstick of a mixed case's tolerance."""
    model = case["model"]()
    for l in model.layers:
        for v in l.weights:
            v.assign(initial[f"{l.name}/{v.name}"])
    losses, _ = train_keras(case, model, x, y)
    return losses, named_weights(model), np.asarray(model.predict(x_pred, verbose=0), np.float32)


def rel_diff(got, want):
    """max |got - want| / max |want| (the scale of the tensor), as float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))


def loss_rel(got, want):
    """Per-step |got - want| / |want|."""
    return np.abs(np.asarray(got, np.float64) - want) / np.maximum(np.abs(want), 1e-12)


def mixed_bounds(initial, want_losses, want_weights, want_pred, ref):
    """A mixed case's bounds, from Keras itself (see MIXED_GAP_FRACTION): gap = Keras' mixed run vs
    Keras' float32 run of the same case (ref); bound = MIXED_GAP_FRACTION of the gap, at least the
    rounding floor, at most MIXED_RTOL. Returns (gaps, bounds): dicts of "loss", "pred" and each weight."""
    ref_losses, ref_weights, ref_pred = ref
    gaps = dict(loss=float(loss_rel(ref_losses, want_losses).max()), pred=rel_diff(ref_pred, want_pred))
    gaps.update({k: rel_diff(ref_weights[k], w) for k, w in want_weights.items()})
    floor = dict(loss=LOSS_RTOL, pred=BF16_ULP)
    # One ulp of a weight's update, relative to the weight's scale (as rel_diff measures it).
    floor.update({k: BF16_ULP * rel_diff(initial[k], w) for k, w in want_weights.items()})
    bounds = {k: min(MIXED_RTOL, max(floor[k], MIXED_GAP_FRACTION * g)) for k, g in gaps.items()}
    return gaps, bounds


def cpu_has_avx512():
    """Whether this CPU has AVX-512 (Linux's /proc/cpuinfo flags; False where that cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def run_case(name, case, driver, work, cifar_dir):
    """Returns a result row: dict with the worst differences, or a skip reason."""
    if case.get("needs_cifar") and not (cifar_dir and os.path.isfile(
            os.path.join(cifar_dir, "cifar-10-batches-bin", "data_batch_1.bin"))):
        return dict(case=name, skipped=f"no CIFAR-10 binary batches under {cifar_dir or '(none given)'}")
    # TensorFlow runs bfloat16 through oneDNN only on CPUs with AVX-512; elsewhere it falls back to
    # Eigen's kernels, which round intermediate results to bfloat16: another reference than the one
    # the mixed bounds were measured against (README.md has the figures).
    if case.get("policy") == "mixed_bfloat16" and not cpu_has_avx512():
        return dict(case=name, skipped="this CPU has no AVX-512, so TensorFlow computes bfloat16 with Eigen's "
                                       "kernels instead of oneDNN's, which the mixed bounds were measured against")
    # The mixed cases carry their own seed so that adding them left the other cases' data as it was.
    rng = np.random.default_rng(case.get("seed") or sorted(n for n in CASES if "seed" not in CASES[n]).index(name) + 1)
    keras.utils.set_random_seed(1234)
    x, y, x_pred = case["data"](rng, cifar_dir)
    x_pred = x if x_pred is None else x_pred
    policy = case.get("policy")
    with policy_scope(policy):
        model = case["model"]()

    case_dir = os.path.join(work, name)
    in_dir, out_dir = os.path.join(case_dir, "in"), os.path.join(case_dir, "out")
    os.makedirs(in_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    initial = named_weights(model)
    save_file(initial, os.path.join(in_dir, "initial.safetensors"))
    save_inputs(in_dir, "x", x)
    np.save(os.path.join(in_dir, "y.npy"), y)
    save_inputs(in_dir, "x_pred", x_pred)
    policy_path = os.path.join(in_dir, "policy.txt")
    if policy:
        with open(policy_path, "w") as f:
            f.write(policy + "\n")
    elif os.path.exists(policy_path):
        os.remove(policy_path)
    run = subprocess.run([driver, name, in_dir, out_dir], capture_output=True, text=True)
    if run.returncode != 0:
        return dict(case=name, error=f"kiln_parity_driver exited {run.returncode}: {run.stderr.strip()}")

    with policy_scope(policy):
        want_losses, keras_warned = train_keras(case, model, x, y)
        want_pred = np.asarray(model.predict(x_pred, verbose=0), np.float32)  # bfloat16 under a mixed policy
    want_weights = named_weights(model)
    # Keras' side beside kiln's, to look into a difference.
    np.save(os.path.join(out_dir, "keras_losses.npy"), want_losses)
    np.save(os.path.join(out_dir, "keras_pred.npy"), want_pred)
    save_file(want_weights, os.path.join(out_dir, "keras_final.safetensors"))
    got_losses = np.load(os.path.join(out_dir, "losses.npy"))
    got_pred = np.load(os.path.join(out_dir, "pred.npy"))
    got_weights = load_file(os.path.join(out_dir, "final.safetensors"))
    gaps, bounds = {}, {}
    if policy:
        gaps, bounds = mixed_bounds(initial, want_losses, want_weights, want_pred,
                                    keras_float32_reference(case, initial, x, y, x_pred))

    row = dict(case=name, steps=len(want_losses), failures=[], gaps=gaps, bounds=bounds)
    kiln_warned = LOGITS_WARNING in run.stderr
    if kiln_warned != keras_warned:
        row["failures"].append(f"Keras {'warned' if keras_warned else 'did not warn'} that from_logits=True met an "
                               f"activation's output, kiln {'did' if kiln_warned else 'did not'}")
    elif keras_warned:
        row.setdefault("notes", []).append("both warned: from_logits=True on an activation's output")
    if got_losses.shape != want_losses.shape:
        row["failures"].append(f"kiln gave {got_losses.size} losses, Keras {want_losses.size}")
        return row
    step_rel = loss_rel(got_losses, want_losses)
    row["loss_step"] = int(np.argmax(step_rel)) + 1
    row["loss"] = float(step_rel.max())
    row["loss_values"] = (float(got_losses[row["loss_step"] - 1]), float(want_losses[row["loss_step"] - 1]))
    loss_tol = bounds.get("loss", LOSS_RTOL)
    if not np.all(np.isfinite(got_losses)) or row["loss"] > loss_tol:
        bad = int(np.argmax(step_rel > loss_tol)) + 1
        row["failures"].append(f"loss differs from step {bad}: kiln {got_losses[bad - 1]:.8g}, "
                               f"Keras {want_losses[bad - 1]:.8g}")
    if set(got_weights) != set(want_weights):
        row["failures"].append(f"weight names: kiln {sorted(got_weights)}, Keras {sorted(want_weights)}")
    else:
        diffs = {k: rel_diff(got_weights[k], want_weights[k]) for k in want_weights}
        row["weights_name"], row["weights"] = max(diffs.items(), key=lambda kv: kv[1])
        row["weight_diffs"] = diffs
        for k, d in diffs.items():
            if d > bounds.get(k, case.get("weights_rtol", TENSOR_RTOL)):
                row["failures"].append(f"final weights {k} differ by {d:.2e}")
    if got_pred.shape != want_pred.shape:
        row["failures"].append(f"predictions: kiln {got_pred.shape}, Keras {want_pred.shape}")
    else:
        row["pred"] = rel_diff(got_pred, want_pred)
        if row["pred"] > bounds.get("pred", TENSOR_RTOL):
            row["failures"].append(f"predictions differ by {row['pred']:.2e}")
        if name == "house_price":
            row["extra"] = f"predict(7.0): kiln {got_pred.item():.6f}, Keras {want_pred.item():.6f}"
            if abs(got_pred.item() - want_pred.item()) > HOUSE_PRICE_ATOL:
                row["failures"].append(f"predict(7.0) differs by more than {HOUSE_PRICE_ATOL}")
    return row


def print_table(rows):
    print(f"\nKeras {keras.__version__} ({keras.backend.backend()}) vs kiln; tolerances: loss {LOSS_RTOL:g} "
          f"relative per step, weights and predictions {TENSOR_RTOL:g} relative to the tensor's scale; mixed-policy "
          f"cases: measured bounds, listed under the table\n")
    print(f"{'case':32} {'steps':>5} {'loss rel diff (step)':>22} {'weights (tensor)':>32} {'predictions':>11}  result")
    for r in rows:
        if "skipped" in r or "error" in r:
            print(f"{r['case']:32} {'':>5} {'':>22} {'':>32} {'':>11}  "
                  + ("SKIP: " + r["skipped"] if "skipped" in r else "FAIL: " + r["error"]))
            continue
        loss = f"{r['loss']:.2e} ({r['loss_step']})" if "loss" in r else "-"
        weights = f"{r['weights']:.2e} ({r['weights_name']})" if "weights" in r else "-"
        pred = f"{r['pred']:.2e}" if "pred" in r else "-"
        print(f"{r['case']:32} {r['steps']:>5} {loss:>22} {weights:>32} {pred:>11}  "
              + ("FAIL" if r["failures"] else "ok"))
    for r in rows:
        if r.get("gaps"):
            g, b = r["gaps"], r["bounds"]
            r.setdefault("notes", []).append(
                f"{CASES[r['case']]['policy']}: Keras mixed vs Keras float32 gap (kiln vs Keras mixed / bound): "
                f"loss {g['loss']:.2e} ({r['loss']:.2e} / {b['loss']:.2e}), predictions {g['pred']:.2e} "
                f"({r.get('pred', float('nan')):.2e} / {b['pred']:.2e})")
            for k in r.get("weight_diffs", {}):
                r["notes"].append(f"  {k}: gap {g[k]:.2e}, kiln {r['weight_diffs'][k]:.2e}, bound {b[k]:.2e}")
        if "weights_rtol" in CASES[r["case"]]:
            r.setdefault("notes", []).append(f"weights compared to {CASES[r['case']]['weights_rtol']:g} (see parity.py)")
        for line in ([r["extra"]] if "extra" in r else []) + r.get("notes", []) + r.get("failures", []):
            print(f"  {r['case']}: {line}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", required=True, help="path to kiln_parity_driver")
    ap.add_argument("--work", required=True, help="directory for the exchanged files")
    ap.add_argument("--cifar", default="", help="directory holding cifar-10-batches-bin/")
    ap.add_argument("cases", nargs="*", help=f"cases to run (default: all of {', '.join(CASES)})")
    args = ap.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}")
    rows = [run_case(n, CASES[n], args.driver, args.work, args.cifar) for n in (args.cases or CASES)]
    print_table(rows)
    failed = [r["case"] for r in rows if "error" in r or r.get("failures")]
    print(f"\nkeras parity: {len(failed)} of {len(rows)} cases failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
