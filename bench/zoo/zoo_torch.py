#!/usr/bin/env python3
"""PyTorch peer of bench_zoo: trains one model of the zoo on random CIFAR-10-shaped data and prints
one JSON line with the images/s of a training epoch (the median over the epochs after a warm-up one).

Models (the same networks as bench/zoo/models.cpp; the two files change together), on NHWC input
[N, 32, 32, 3] as Keras takes it, flattened in NHWC order as Keras flattens:
  seed      Conv2D(32, 3x3, relu) - MaxPool 2 - Flatten - Dense(64, relu) - Dense(10); Adam
  conv4     3x3 convs 32 'same', 32 'valid', pool, 64 'same', 64 'valid', pool, Flatten,
            Dense(256, relu), Dense(10); Adam
  vgg       3x3 'same' conv-BN-ReLU at 64-64-pool-128-128-pool-256-256-pool (convs without bias),
            Flatten, Dense(256, relu), Dense(10); SGD momentum 0.9
  resnet20  bench/resnet20_torch.py's ResNet20 (the peer of examples/resnet20.h); SGD momentum 0.9
  mlp       Flatten (3072) - Dense(1024, relu) - Dense(1024, relu) - Dense(10); SGD momentum 0.9
  wide      Conv2D(128, 5x5, relu, 'same') - MaxPool 2 - Flatten - Dense(10); SGD momentum 0.9
  allconv   All-CNN-C: 3x3 convs (relu) 96, 96, 96 stride 2, 192, 192, 192 stride 2, 192 'valid',
            1x1 192, 1x1 10 (linear), global average; SGD momentum 0.9. Keras' 'same' at stride 2
            pads 0 before and 1 after, PyTorch's padding=1 both sides: the same shapes and work
  lenet5    Conv2D(6, 5x5, tanh) - AvgPool 2 - Conv2D(16, 5x5, tanh) - AvgPool 2 - Flatten -
            Dense(120, tanh) - Dense(84, tanh) - Dense(10); SGD momentum 0.9
  densenet  Conv2D(24, 3x3 'same'), three dense blocks of four BN-ReLU-Conv2D(12, 3x3 'same') layers
            each concatenated to its input, BN-ReLU-Conv2D(1x1, half the channels)-AvgPool 2 between
            blocks, BN-ReLU, global average, Dense(10); convs without bias; SGD momentum 0.9
Keras' defaults: glorot-uniform kernels (xavier_uniform_; a conv's fans are kh*kw*in and kh*kw*out,
as Keras computes them), zero biases, BN momentum 0.99 / epsilon 1e-3 (PyTorch's momentum 0.01),
Adam(1e-3, 0.9, 0.999, eps 1e-7), SGD(0.01, momentum 0.9). Loss: cross-entropy from logits; the
accuracy is counted on the device every step, as kiln's fit does with its "accuracy" metric.

Data: --samples images of random bytes / 255 and random labels (fixed seed), on the device before
timing. An epoch is what fit does: a shuffle, then batches of --batch-size, each one step (forward,
loss, zeroing gradients, backward, optimizer step). The clock of an epoch stops after the device has
finished (torch.cuda.synchronize()).

Modes: eager (channels_last, cudnn.benchmark on, float32: TF32 only with --tf32); compile
(torch.compile(model), default mode) and max-autotune (torch.compile(model, mode="max-autotune"),
which also replays CUDA graphs), both with dynamic=False and the eager mode's settings. Before epoch 1
every batch shape runs one step; its time is compile_s in the compile modes (reported apart, never in
images/s). Epoch 1 is the warm-up epoch, left out of the median like bench_zoo's.

Precision (--precision, bench_zoo's flag): float32; or mixed_bfloat16 / mixed_float16, PyTorch's
automatic mixed precision recipe as the peer of Keras' policies: torch.autocast (dtype bfloat16 or
float16) around forward and loss, float32 parameters, channels_last kept, and for float16 a
torch.amp.GradScaler (scale, step, update) as fit's LossScaleOptimizer. The last Linear layer runs in
float32 (its input cast to float32, autocast off inside it), as Keras advises and bench_zoo does. On
the CPU mixed_bfloat16 uses torch.autocast("cpu"); mixed_float16 is the zoo's GPU-only precision and
is refused there.
Exit code 2: no usable GPU, or mixed_float16 on the CPU (bench/zoo.py reads it as "skipped").
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

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)
from resnet20_torch import ResNet20  # noqa: E402  (bench/, the example's PyTorch peer)
from torch_seed import set_fp32_precision  # noqa: E402

MODELS = ["seed", "conv4", "vgg", "resnet20", "mlp", "wide", "allconv", "lenet5", "densenet"]
ADAM_MODELS = {"seed", "conv4"}
PRECISIONS = {"float32": None, "mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}


class ToNCHW(nn.Module):
    """NHWC input seen as NCHW: a view, channels_last in memory, so no copy."""

    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class FlattenNHWC(nn.Module):
    """Keras' Flatten of a channels_last tensor: (H, W, C) order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


class GlobalAverage(nn.Module):
    """Keras' GlobalAveragePooling2D: the mean over height and width."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Float32Head(nn.Module):
    """The logits layer in float32 under autocast (Keras' float32 last layer): the input cast to
    float32 and autocast off while the wrapped layer runs, so its matmul and output are float32."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.layer(x.float())


class DenseLayer(nn.Module):
    """BN-ReLU-Conv(3x3, growth) of a dense block; its output joins its input along the channels."""

    def __init__(self, cin, growth):
        super().__init__()
        self.bn = bn(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class DenseNet(nn.Module):
    """models.cpp's densenet: 24 filters, three blocks of four layers at growth 12, transitions
    halving the channels with a 1x1 convolution and a 2x2 average pooling."""

    def __init__(self, classes=10):
        super().__init__()
        layers, c = [nn.Conv2d(3, 24, 3, padding=1, bias=False)], 24
        for block in range(3):
            for _ in range(4):
                layers.append(DenseLayer(c, 12))
                c += 12
            if block < 2:
                layers += [bn(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        layers += [bn(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x_nhwc):
        return self.fc(self.features(x_nhwc.permute(0, 3, 1, 2)).mean((2, 3)))


def float32_head(model):
    """Wraps the model's last Linear (after its initialisation, so the weights stay those of float32)."""
    if isinstance(model, (ResNet20, DenseNet)):
        model.fc = Float32Head(model.fc)
    else:
        model[-1] = Float32Head(model[-1])
    return model


def bn(channels):
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def keras_initialised(model):
    """Keras' defaults on every convolution and Linear: glorot-uniform kernels, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def build(name):
    if name == "resnet20":
        return ResNet20()  # initialises itself with Keras' defaults
    if name == "densenet":
        return keras_initialised(DenseNet())
    if name == "seed":
        layers = [ToNCHW(), nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2), FlattenNHWC(),
                  nn.Linear(15 * 15 * 32, 64), nn.ReLU(), nn.Linear(64, 10)]
    elif name == "conv4":
        layers = [ToNCHW(), nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
                  nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),
                  nn.MaxPool2d(2), FlattenNHWC(), nn.Linear(6 * 6 * 64, 256), nn.ReLU(), nn.Linear(256, 10)]
    elif name == "vgg":
        layers, cin = [ToNCHW()], 3
        for filters in (64, 128, 256):
            for _ in range(2):
                layers += [nn.Conv2d(cin, filters, 3, padding=1, bias=False), bn(filters), nn.ReLU()]
                cin = filters
            layers.append(nn.MaxPool2d(2))
        layers += [FlattenNHWC(), nn.Linear(4 * 4 * 256, 256), nn.ReLU(), nn.Linear(256, 10)]
    elif name == "mlp":  # NHWC input flattens in Keras' order as it is
        layers = [nn.Flatten(), nn.Linear(3072, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                  nn.Linear(1024, 10)]
    elif name == "wide":
        layers = [ToNCHW(), nn.Conv2d(3, 128, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), FlattenNHWC(),
                  nn.Linear(16 * 16 * 128, 10)]
    elif name == "allconv":
        def conv(cin, cout, k, stride=1, padding=1, relu=True):
            return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding)] + ([nn.ReLU()] if relu else [])
        layers = [ToNCHW(), *conv(3, 96, 3), *conv(96, 96, 3), *conv(96, 96, 3, 2), *conv(96, 192, 3),
                  *conv(192, 192, 3), *conv(192, 192, 3, 2), *conv(192, 192, 3, padding=0),
                  *conv(192, 192, 1, padding=0), *conv(192, 10, 1, padding=0, relu=False), GlobalAverage()]
    elif name == "lenet5":
        layers = [ToNCHW(), nn.Conv2d(3, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                  nn.AvgPool2d(2), FlattenNHWC(), nn.Linear(5 * 5 * 16, 120), nn.Tanh(), nn.Linear(120, 84),
                  nn.Tanh(), nn.Linear(84, 10)]
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return keras_initialised(nn.Sequential(*layers))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--mode", choices=["eager", "compile", "max-autotune"], default="eager")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--samples", type=int, default=10240, help="training images per epoch")
    p.add_argument("--steps", type=int, default=0, help="steps per epoch (sets --samples to steps x batch size)")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=list(PRECISIONS), default="float32",
                   help="float32, or autocast to bfloat16 / float16 with a float32 last layer (default float32)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and convolution")
    p.add_argument("--json", default="", help="also write the result here")
    a = p.parse_args()
    if a.steps > 0:
        a.samples = a.steps * a.batch_size
    if min(a.batch_size, a.samples, a.epochs, a.threads) < 1:
        p.error("--batch-size, --samples, --epochs and --threads must be positive")

    torch.set_num_threads(a.threads)
    if a.device == "cpu" and a.precision == "mixed_float16":
        print("zoo_torch: --precision mixed_float16 is GPU-only in the model zoo; expected --device gpu, or "
              "--precision mixed_bfloat16 on the CPU", file=sys.stderr)
        return 2
    if a.device == "gpu":
        if not torch.cuda.is_available():
            print("zoo_torch: no usable GPU", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        set_fp32_precision(a.tf32)
        torch.backends.cudnn.benchmark = True
        sync = torch.cuda.synchronize
    else:
        device = torch.device("cpu")
        sync = lambda: None  # noqa: E731
    torch.manual_seed(a.seed)

    gen = torch.Generator().manual_seed(a.seed + 1)
    n = a.samples
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=gen).to(device).float().div_(255)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)

    half = PRECISIONS[a.precision]
    model = build(a.model)
    if half is not None:
        model = float32_head(model)
    model = model.to(device).to(memory_format=torch.channels_last)
    net = model
    if a.mode != "eager":
        net = torch.compile(model, mode=None if a.mode == "compile" else "max-autotune", dynamic=False)
    params = [q for q in model.parameters() if q.requires_grad]
    if a.model in ADAM_MODELS:
        opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    else:
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    mark_step = torch.compiler.cudagraph_mark_step_begin if a.mode == "max-autotune" else (lambda: None)
    # PyTorch's AMP recipe: autocast around forward and loss only; float16 scales the loss.
    autocast = torch.autocast(device_type=device.type, dtype=half, enabled=half is not None)
    scaler = torch.amp.GradScaler(device.type) if half == torch.float16 else None

    def train_step(xb, yb):
        mark_step()
        with autocast:
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss.detach() * len(yb), (logits.detach().argmax(1) == yb).sum()

    # One step per batch shape before the epochs: the compilation in the compile modes.
    sync()
    t0 = time.perf_counter()
    for size in sorted({min(n, a.batch_size), n % a.batch_size} - {0}):
        train_step(x[:size], y[:size])
    sync()
    first_steps_s = time.perf_counter() - t0

    shuffle = torch.Generator(device=device).manual_seed(a.seed + 2)
    epoch_s, final_loss = [], 0.0
    for _ in range(1 + a.epochs):
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=shuffle)
        xs, ys = x[perm], y[perm]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i in range(0, n, a.batch_size):
            l, c = train_step(xs[i:i + a.batch_size], ys[i:i + a.batch_size])
            loss_sum += l
            correct += c
        final_loss = loss_sum.item() / n  # read back at the epoch's end, as fit does
        sync()
        epoch_s.append(time.perf_counter() - t0)

    timed = statistics.median(epoch_s[1:])
    out = {"framework": "torch", "model": a.model, "mode": a.mode, "device": a.device, "precision": a.precision,
           "threads": torch.get_num_threads(), "batch_size": a.batch_size, "samples": n, "epochs": a.epochs,
           "optimizer": "adam" if a.model in ADAM_MODELS else "sgd",
           # Keras' count_params: BN's moving statistics included
           "params": sum(t.numel() for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()),
           "epoch_s": [round(t, 6) for t in epoch_s], "warmup_s": round(epoch_s[0], 6),
           "compile_s": round(first_steps_s, 3) if a.mode != "eager" else None,
           "images_per_s": n / timed, "final_loss": final_loss,
           "tf32": a.tf32 and a.device == "gpu", "torch": torch.__version__}
    if a.device == "gpu":
        out["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(out), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
