#!/usr/bin/env python3
"""PyTorch peer of bench_train: times training steps of the seed CIFAR-10 CNN with Keras' defaults
and prints the same JSON (median steps/s and images/s over repeats after warm-up).

Model: Conv2D(32, 3x3, relu, valid) -> MaxPool 2x2 -> Flatten -> Dense(64, relu) -> Dense(10), with
glorot-uniform weights and zero biases; Adam(1e-3, 0.9, 0.999, eps 1e-7); cross-entropy from logits.
Input is NHWC like Keras'. Its NCHW view (permute) is channels_last in memory, so the convolution
runs channels_last without a copy; flattening happens back in NHWC order, as Keras flattens.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HEIGHT, WIDTH, CHANNELS, CLASSES = 32, 32, 3, 10
POOL_BATCHES = 4  # batches are drawn round-robin, as in bench_train


class SeedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(CHANNELS, 32, 3)  # padding 0 = Keras' "valid"
        self.fc1 = nn.Linear(15 * 15 * 32, 64)
        self.fc2 = nn.Linear(64, CLASSES)
        # Keras: glorot_uniform kernels (conv fans are kh*kw*in and kh*kw*out, as xavier_uniform_
        # computes them for a conv weight) and zero biases.
        for layer in (self.conv, self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x_nhwc, contiguous_nchw=False):
        x = x_nhwc.permute(0, 3, 1, 2)
        if contiguous_nchw:
            x = x.contiguous()
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = x.permute(0, 2, 3, 1).flatten(1)  # Keras flattens NHWC
        return self.fc2(F.relu(self.fc1(x)))


def set_fp32_precision(tf32):
    """Full float32 by default (kiln's default); TF32 for matmul and conv only when asked."""
    precision = "tf32" if tf32 else "ieee"
    try:  # the API of PyTorch 2.9 and later
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    except (AttributeError, ValueError, RuntimeError):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and convolution")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms")
    p.add_argument("--contiguous-nchw", action="store_true", help="copy the input to contiguous NCHW")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.device == "gpu":
        if not torch.cuda.is_available():
            print("torch_seed: no usable GPU", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        set_fp32_precision(a.tf32)
        torch.backends.cudnn.benchmark = a.cudnn_benchmark
    else:
        device = torch.device("cpu")

    model = SeedCNN().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    gen = torch.Generator().manual_seed(a.seed + 1)
    xs = [torch.rand(a.batch_size, HEIGHT, WIDTH, CHANNELS, generator=gen).to(device) for _ in range(POOL_BATCHES)]
    ys = [torch.randint(0, CLASSES, (a.batch_size,), generator=gen).to(device) for _ in range(POOL_BATCHES)]

    step = 0
    loss = None

    def train_step():
        nonlocal step, loss
        xb, yb = xs[step % POOL_BATCHES], ys[step % POOL_BATCHES]
        loss = F.cross_entropy(model(xb, a.contiguous_nchw), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        train_step()
    sync()

    steps_per_s = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step()
        sync()
        steps_per_s.append(a.steps / (time.perf_counter() - t0))
    med = statistics.median(steps_per_s)

    out = {
        "framework": "pytorch",
        "device": a.device,
        "threads": torch.get_num_threads(),
        "batch_size": a.batch_size,
        "steps": a.steps,
        "warmup": a.warmup,
        "repeats": a.repeats,
        "steps_per_s": steps_per_s,
        "median_steps_per_s": med,
        "median_images_per_s": med * a.batch_size,
        "final_loss": float(loss.item()) if loss is not None else 0.0,
        "torch": torch.__version__,
        "settings": {"tf32": a.tf32, "cudnn_benchmark": a.cudnn_benchmark,
                     "memory_format": "contiguous_nchw" if a.contiguous_nchw else "channels_last"},
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
