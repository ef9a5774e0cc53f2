#!/usr/bin/env python3
"""PyTorch peer of examples/cifar10_resnet.cpp: ResNet-20 on CIFAR-10 with Keras' defaults.

Prints each epoch's training loss and accuracy, the test accuracy after the last epoch and a JSON
line; images_per_s is the median speed of the epochs after the first (warm-up) one.

Model (He et al. 2016, n = 3): conv3x3(16)-BN-ReLU; 3 stages of 3 basic blocks (16, 32, 64 filters,
stride 2 in the first block of stages 2 and 3): conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU; the
shortcut is the identity or, where the shape changes, 1x1 conv (stride 2) + BN (option B); global
average pooling; Dense(10) logits; convs without bias. Keras' defaults: glorot-uniform kernels
(xavier_uniform_ takes a conv's fans as kh*kw*in and kh*kw*out, as Keras), zero dense bias, BN
momentum 0.99 (PyTorch's 0.01), epsilon 1e-3, gamma 1, beta 0. Keras pads a stride-2 "same" 3x3
conv on an even size only after the input; so does this model. Input is NHWC (its NCHW view is
channels_last in memory, as are the weights).

Training: SGD(momentum 0.9), batch 128 with a partial last batch, reshuffled each epoch, pixels / 255.
PyTorch's momentum (b = 0.9 b + g; p -= lr b) equals Keras' (m = 0.9 m - lr g; p += m) at constant
lr, and differs slightly under --schedule cosine (Keras' CosineDecay over all steps, alpha 0).
--weight-decay is Keras 3's decoupled rule, by hand: p -= lr * wd * p on every trainable parameter
before the step. --augment: random horizontal flip and shift of -4..4 whole pixels per axis,
zero-filled, per batch on the device.

Modes: eager; compile = torch.compile(model), default mode, dynamic=False (the partial last batch
gets its own static graph). Both: float32 (TF32 only with --tf32), cudnn.benchmark on. Each shape
is run once before epoch 1, then weights, BN statistics and optimizer state are restored; in
compile mode that time is compile_s.
"""
import argparse
import copy
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_seed import set_fp32_precision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_BATCH = 1000


def load_cifar10(data_dir, names):
    """NHWC uint8 images and int64 labels from records of 1 label byte + 3072 bytes (R, G, B planes)."""
    paths = [os.path.join(data_dir, "cifar-10-batches-bin", name) for name in names]
    for path in paths:
        if not os.path.isfile(path):
            sys.exit(f"resnet20_torch: no {path} (../shared/data/cifar10/prepare.py DIR writes it)")
    raw = torch.cat([torch.from_file(q, size=os.path.getsize(q), dtype=torch.uint8) for q in paths]).view(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).permute(0, 2, 3, 1).contiguous(), raw[:, 0].long()


def bn(c):
    layer = nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
    nn.init.ones_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1 if stride == 1 else 0, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = bn(cout)
        reshape = stride != 1 or cin != cout
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout)) if reshape else None

    def forward(self, x):
        h = F.pad(x, (0, 1, 0, 1)) if self.stride == 2 else x  # Keras' "same" at stride 2
        h = F.relu(self.bn1(self.conv1(h)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet20(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), bn(16), nn.ReLU())
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x_nhwc):
        x = self.blocks(self.stem(x_nhwc.permute(0, 3, 1, 2)))
        return self.fc(x.mean((2, 3)))


def augment(x, gen):
    """Random horizontal flip and integer shift of -4..4 pixels per axis, zero-filled; x is NHWC."""
    n, h, w, c = x.shape
    flip = torch.rand(n, device=x.device, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(2), x)
    padded = F.pad(x, (0, 0, 4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n, 1), device=x.device, generator=gen)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None, None].expand(n, h, w + 8, c)
    cols = (dx + torch.arange(w, device=x.device))[:, None, :, None].expand(n, h, w, c)
    return padded.gather(1, rows).gather(2, cols)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--data", default=os.path.join(ROOT, "build", "cifar10"), help="folder with cifar-10-batches-bin/")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--weight-decay", type=float, default=0.0, help="decoupled, as Keras 3: p -= lr * wd * p")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and convolution")
    p.add_argument("--json", default="", help="also write the final JSON here")
    a = p.parse_args()

    if a.device == "cuda" and not torch.cuda.is_available():
        print("resnet20_torch: no usable GPU", file=sys.stderr)
        return 2  # the bench scripts' code for "no usable GPU"
    device = torch.device(a.device)
    if device.type == "cuda":
        set_fp32_precision(a.tf32)
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(a.seed)

    x_train, y_train = load_cifar10(a.data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    x_test, y_test = load_cifar10(a.data, ["test_batch.bin"])
    if a.limit:
        x_train, y_train = x_train[:a.limit], y_train[:a.limit]
    x_train, x_test = (x.to(device).float().div_(255) for x in (x_train, x_test))
    y_train, y_test = y_train.to(device), y_test.to(device)
    n = len(x_train)
    total_steps = a.epochs * math.ceil(n / a.batch_size)

    model = ResNet20().to(device).to(memory_format=torch.channels_last)
    net = torch.compile(model, dynamic=False) if a.mode == "compile" else model
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(a.seed + 1)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def lr_at(step):  # Keras' CosineDecay(lr, total_steps, alpha=0) or a constant
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        return a.lr * (cosine if a.schedule == "cosine" else 1.0)

    def train_step(xb, yb, lr):
        for group in opt.param_groups:
            group["lr"] = lr
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.weight_decay:
            with torch.no_grad():
                torch._foreach_mul_(params, 1.0 - lr * a.weight_decay)
        opt.step()
        return loss.detach() * len(yb), (logits.argmax(1) == yb).sum()

    def evaluate(count):  # accuracy on the first `count` test images
        model.eval()
        with torch.no_grad():
            correct = sum((net(x_test[i:i + EVAL_BATCH]).argmax(1) == y_test[i:i + EVAL_BATCH]).sum()
                          for i in range(0, count, EVAL_BATCH))
        model.train()
        return int(correct) / count

    # Warm-up (compilation in compile mode): every shape once, then the state as it was.
    saved = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    sync()
    t0 = time.perf_counter()
    for size in sorted({min(n, a.batch_size), n % a.batch_size} - {0}):
        train_step(x_train[:size], y_train[:size], 0.0)
    evaluate(EVAL_BATCH)
    sync()
    warmup_s = time.perf_counter() - t0
    model.load_state_dict(saved[0])
    opt.load_state_dict(saved[1])
    print(f"warm-up ({a.mode}): {warmup_s:.2f} s", flush=True)

    epoch_s, step = [], 0
    for epoch in range(a.epochs):
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=gen)
        xs, ys = x_train[perm], y_train[perm]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i in range(0, n, a.batch_size):
            xb, yb = xs[i:i + a.batch_size], ys[i:i + a.batch_size]
            if a.augment:
                xb = augment(xb, gen)
            l, c = train_step(xb, yb, lr_at(step))
            loss_sum += l
            correct += c
            step += 1
        sync()
        epoch_s.append(time.perf_counter() - t0)
        print(f"epoch {epoch + 1}/{a.epochs}: loss {loss_sum.item() / n:.4f} accuracy {correct.item() / n:.4f}"
              f" ({epoch_s[-1]:.2f} s, {n / epoch_s[-1]:.0f} images/s)", flush=True)

    test_accuracy = evaluate(len(x_test))
    print(f"test accuracy {test_accuracy:.4f}")
    timed = epoch_s[1:] or epoch_s
    if len(epoch_s) < 2:
        print("resnet20_torch: one epoch only, so images_per_s includes the warm-up epoch", file=sys.stderr)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    out = {"mode": a.mode, "epochs": a.epochs, "seed": a.seed, "test_accuracy": test_accuracy,
           "images_per_s": n / statistics.median(timed), "epoch_s": [round(t, 4) for t in epoch_s],
           "torch": torch.__version__, "device": name,
           "compile_s": round(warmup_s, 3) if a.mode == "compile" else None, "batch_size": a.batch_size,
           "lr": a.lr, "schedule": a.schedule, "weight_decay": a.weight_decay, "augment": a.augment,
           "train_images": n, "tf32": a.tf32 and device.type == "cuda"}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
