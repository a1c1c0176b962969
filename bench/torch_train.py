#!/usr/bin/env python3
"""PyTorch peer of `symfeat train`: same data, models, heads, optimiser and
schedules (see bench/common.py), one JSON line per epoch.

Schedule (per optimiser step, global step t 0-based, steps_per_epoch =
ceil(n_train / batch) with the last partial batch kept, T = epochs *
steps_per_epoch, W = warmup_epochs * steps_per_epoch):
  t < W      : lr * (t + 1) / W
  const      : lr
  cosine     : lr * 0.5 * (1 + cos(pi * (t - W) / (T - W)))
  multistep  : lr * gamma ** (number of milestones <= epoch), epoch 0-based

JSON line per epoch: epoch (1-based), lr (the rate of the epoch's last step),
train_loss / train_acc (mean over the epoch's samples, train mode, as the
steps saw them), test_loss / test_acc (eval mode, no_grad), seconds (wall time
of the epoch's training steps, evaluation excluded), images_per_s
(n_train / seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist", choices=common.DATASETS)
    p.add_argument("--data", default=None, help=f"data folder (default for fashion-mnist: {common.FASHION_MNIST_DIR})")
    p.add_argument("--net", default="cnn", choices=("cnn", "mlp", "resnet20"))
    p.add_argument("--head", default="softmax", choices=("softmax", "symmetrical", "normface", "cosface", "arcface"))
    p.add_argument("--s", type=float, default=16.0, help="logit scale of the cosine heads")
    p.add_argument("--m", type=float, default=0.0, help="margin of cosface / arcface (radians)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--schedule", default="const", choices=("const", "cosine", "multistep"))
    p.add_argument("--milestones", default="80,120", help="comma-separated 0-based epochs for multistep")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None, help="keep the first N training samples")
    p.add_argument("--test-limit", type=int, default=None, help="keep the first N test samples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--eval-batch", type=int, default=512)
    p.add_argument("--out", default="metrics.jsonl", help="JSON lines file, appended to")
    p.add_argument("--export", default=None, help="folder for features.npy, labels.npy, class_weights.npy, head_params.npy")
    a = p.parse_args(argv)
    if a.epochs < 1 or a.batch < 1 or a.warmup_epochs < 0:
        p.error("--epochs and --batch must be >= 1, --warmup-epochs >= 0")
    if a.warmup_epochs > a.epochs:
        p.error("--warmup-epochs must not exceed --epochs")
    try:
        a.milestones = sorted(int(m) for m in a.milestones.split(",") if m.strip())
    except ValueError:
        p.error("--milestones must be comma-separated integers")
    return a


def lr_at(a, t: int, epoch: int, steps_per_epoch: int) -> float:
    total = a.epochs * steps_per_epoch
    warm = a.warmup_epochs * steps_per_epoch
    if t < warm:
        return a.lr * (t + 1) / warm
    if a.schedule == "const":
        return a.lr
    if a.schedule == "cosine":
        span = total - warm
        return a.lr * 0.5 * (1.0 + math.cos(math.pi * (t - warm) / span)) if span > 0 else a.lr
    passed = sum(1 for m in a.milestones if m <= epoch)
    return a.lr * a.gamma**passed


@torch.no_grad()
def evaluate(model, x, y, batch, device, want_features=False):
    model.eval()
    loss_sum, correct, feats = 0.0, 0, []
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
        f = model.backbone(xb)
        logits = model.head(f)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
        if want_features:
            feats.append(f.float().cpu())
    n = max(len(x), 1)
    return loss_sum / n, correct / n, (torch.cat(feats) if want_features else None)


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available")

    xtr, ytr, xte, yte, classes = common.load_dataset(a.dataset, a.data, a.train_limit, a.test_limit)
    n = len(xtr)
    if n == 0:
        sys.exit("empty training set")
    print(
        f"{a.dataset}: train {tuple(xtr.shape)}, test {tuple(xte.shape)}, {classes} classes; "
        f"net {a.net}, head {a.head}, seed {a.seed}, torch {torch.__version__}, threads {torch.get_num_threads()}",
        file=sys.stderr,
    )

    torch.manual_seed(a.seed)
    model = common.build_model(a.net, a.head, tuple(xtr.shape[1:]), classes, a.s, a.m).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=a.lr, momentum=a.momentum, dampening=0.0,
        weight_decay=a.weight_decay, nesterov=a.nesterov,
    )
    gen = torch.Generator().manual_seed(a.seed)
    steps_per_epoch = math.ceil(n / a.batch)
    if a.device == "cuda":
        xtr_d, ytr_d = xtr.to(device), ytr.to(device)
    else:
        xtr_d, ytr_d = xtr, ytr

    out_dir = os.path.dirname(a.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    t = 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        lr = a.lr
        if a.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = perm[i * a.batch : (i + 1) * a.batch]
            xb, yb = xtr_d[idx], ytr_d[idx]
            lr = lr_at(a, t, epoch, steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(xb, yb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().double() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
            t += 1
        if a.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n
        last = epoch == a.epochs - 1
        test_loss, test_acc, feats = evaluate(model, xte, yte, a.eval_batch, device, want_features=bool(last and a.export))
        rec = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": seconds,
            "images_per_s": n / seconds if seconds > 0 else float("nan"),
        }
        line = json.dumps(rec)
        print(line, flush=True)
        with open(a.out, "a") as f:
            f.write(line + "\n")
        if not math.isfinite(train_loss):
            sys.exit(f"training loss is not finite at epoch {epoch + 1}")

    if a.export:
        os.makedirs(a.export, exist_ok=True)
        with torch.no_grad():
            np.save(os.path.join(a.export, "features.npy"), feats.numpy().astype(np.float32))
            np.save(os.path.join(a.export, "labels.npy"), yte.numpy().astype(np.int64))
            w = model.head.class_weights().detach().float().cpu().numpy()
            np.save(os.path.join(a.export, "class_weights.npy"), w.astype(np.float32))
            hp = model.head.derived_params()
            if hp is not None:
                np.save(os.path.join(a.export, "head_params.npy"), hp.detach().float().cpu().numpy())
        print(f"exported to {a.export}", file=sys.stderr)


if __name__ == "__main__":
    main()
