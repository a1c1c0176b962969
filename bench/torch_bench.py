#!/usr/bin/env python3
"""PyTorch peer of `symfeat bench`: training and inference throughput on random
input. cnn: 1x28x28, resnet20: 3x32x32, C = 10. SGD (momentum 0.9, weight decay
5e-4, lr 0.01), mean cross-entropy. `warmup` untimed steps, then `steps` timed
training steps; then `warmup` untimed and `steps` timed inference steps in
eval mode under no_grad. CUDA is synchronised before reading the clock.
Prints exactly two lines: train_img_s=N and infer_img_s=N.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SHAPES = {"cnn": (1, 28, 28), "resnet20": (3, 32, 32)}
DEFAULT_HEAD = {"cnn": "softmax", "resnet20": "symmetrical"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn", choices=tuple(SHAPES))
    p.add_argument("--head", default=None, choices=("softmax", "symmetrical"),
                   help="default: softmax for cnn, symmetrical for resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.steps < 1 or a.batch < 1 or a.warmup < 0:
        p.error("--steps and --batch must be >= 1, --warmup >= 0")
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available")
    torch.set_num_threads(a.threads)
    head = a.head or DEFAULT_HEAD[a.model]
    dev = torch.device(a.device)
    classes = 10

    torch.manual_seed(a.seed)
    model = common.build_model(a.model, head, SHAPES[a.model], classes).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, *SHAPES[a.model], device=dev)
    y = torch.randint(0, classes, (a.batch,), device=dev)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def train_step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(a.warmup):
        train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        train_step()
    sync()
    train_s = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        for _ in range(a.warmup):
            model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            model(x)
        sync()
        infer_s = time.perf_counter() - t0

    n = a.batch * a.steps
    print(f"train_img_s={n / train_s:.1f}")
    print(f"infer_img_s={n / infer_s:.1f}")


if __name__ == "__main__":
    main()
