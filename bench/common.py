"""Shared pieces of symfeat's PyTorch peers: data readers, normalisation,
backbones and heads, built to match symfeat's own (src/nets, src/heads).

Data
  - IDX (MNIST, Fashion-MNIST): train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz (gzip is
    detected by the 1f 8b magic, not by the name).
  - CIFAR-10 binary: data_batch_1..5.bin, test_batch.bin (1 label byte + 3072
    pixel bytes per record), directly in the folder or in cifar-10-batches-bin/.
  - CIFAR-100 binary: train.bin, test.bin (coarse byte, fine byte, 3072 pixel
    bytes); the fine label is used. Directly or in cifar-100-binary/.
  Limits keep the first N samples of each split (file order).
  Normalisation: x/255, then per channel (x - mean) / std with mean and std
  over all pixels of the (possibly limited) training set; applied to both
  splits.

Models (PyTorch default initialisation unless said otherwise)
  - cnn: conv5x5 32 pad 2 - ReLU - maxpool 2 - conv5x5 64 pad 2 - ReLU -
    maxpool 2 - flatten - fc 128 - ReLU (D = 128).
  - mlp: flatten - fc 256 - ReLU - fc 128 - ReLU (D = 128).
  - resnet20: CIFAR ResNet (He et al. 2016, section 4.2), option-A shortcuts
    (x[:, :, ::2, ::2] and zero-padded channels), conv 3x3 16 - BN - ReLU,
    3 stages x 3 BasicBlocks (16/32/64 channels), convs without bias, global
    average pool (D = 64). Conv weights: kaiming_normal_ (fan_in, gain sqrt 2)
    as in the common CIFAR ResNet code (akamaster/pytorch_resnet_cifar10).
    That code also applies kaiming_normal_ to its final nn.Linear; here the
    classifier is the separate head, which keeps the PyTorch default
    initialisation, exactly as symfeat does (its ResNet only re-initialises
    the convolutions). BatchNorm: PyTorch defaults (eps 1e-5, momentum 0.1,
    weight 1, bias 0).
Heads
  - softmax: nn.Linear(D, C) with bias.
  - symmetrical (Kansizoglou et al., TNNLS 2022): v1, v2 ~ U[0, 1)^D,
    n1 = v1/|v1|, u = v2 - (n1.v2) n1, n2 = u/max(|u|, 1e-12),
    w_k = cos(2 pi k/C) n1 + sin(2 pi k/C) n2, logits = s * normalize(x) W^T.
"""

from __future__ import annotations

import gzip
import math
import os
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")
NUM_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}


# ---------------------------------------------------------------- data


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def _find(directory: str, name: str, subdirs=()) -> str:
    """First existing of dir/name, dir/name.gz, dir/sub/name(.gz)."""
    tried = []
    for d in (directory,) + tuple(os.path.join(directory, s) for s in subdirs):
        for n in (name, name + ".gz"):
            p = os.path.join(d, n)
            tried.append(p)
            if os.path.isfile(p):
                return p
    raise FileNotFoundError(f"{name} not found; tried: {', '.join(tried)}")


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a numpy array of its declared shape."""
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX type 0x{data[2]:02x}")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dt = np.dtype(dtypes[data[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    need = offset + count * dt.itemsize
    if len(data) < need:
        raise ValueError(f"{path}: truncated ({len(data)} bytes, need {need})")
    return np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(dims)


def load_idx_split(directory: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """split 'train' or 't10k' -> (uint8 images N x 1 x H x W, int64 labels N)."""
    images = read_idx(_find(directory, f"{split}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{split}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{directory}: bad IDX shapes {images.shape} / {labels.shape}")
    return images[:, None, :, :].astype(np.uint8), labels.astype(np.int64)


def read_cifar_bin(path: str, label_bytes: int, label_index: int) -> Tuple[np.ndarray, np.ndarray]:
    """CIFAR binary batch: records of `label_bytes` label bytes + 3072 pixels."""
    data = _read_bytes(path)
    rec = label_bytes + 3072
    if len(data) % rec != 0:
        raise ValueError(f"{path}: size {len(data)} is not a multiple of {rec}")
    arr = np.frombuffer(data, dtype=np.uint8).reshape(-1, rec)
    labels = arr[:, label_index].astype(np.int64)
    images = arr[:, label_bytes:].reshape(-1, 3, 32, 32)
    return images, labels


def load_cifar10(directory: str, train: bool):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    parts = [read_cifar_bin(_find(directory, n, ("cifar-10-batches-bin",)), 1, 0) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar100(directory: str, train: bool):
    name = "train.bin" if train else "test.bin"
    return read_cifar_bin(_find(directory, name, ("cifar-100-binary",)), 2, 1)


def load_dataset(
    dataset: str,
    directory: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
):
    """Returns (x_train, y_train, x_test, y_test, num_classes) as torch tensors,
    images float32 N x Ch x H x W normalised per channel with the statistics of
    the (limited) training set, labels int64."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {DATASETS}")
    if directory is None:
        if dataset != "fashion-mnist":
            raise ValueError(f"--data is required for {dataset}")
        directory = FASHION_MNIST_DIR
    if dataset in ("fashion-mnist", "mnist"):
        xtr, ytr = load_idx_split(directory, "train")
        xte, yte = load_idx_split(directory, "t10k")
    elif dataset == "cifar10":
        xtr, ytr = load_cifar10(directory, True)
        xte, yte = load_cifar10(directory, False)
    else:
        xtr, ytr = load_cifar100(directory, True)
        xte, yte = load_cifar100(directory, False)
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    if test_limit:
        xte, yte = xte[:test_limit], yte[:test_limit]
    classes = NUM_CLASSES[dataset]
    for y in (ytr, yte):
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"label out of range 0..{classes - 1}")
    mean, std = channel_stats(xtr)
    return (
        torch.from_numpy(normalise(xtr, mean, std)),
        torch.from_numpy(ytr.copy()),
        torch.from_numpy(normalise(xte, mean, std)),
        torch.from_numpy(yte.copy()),
        classes,
    )


def channel_stats(images_u8: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of x/255 over all pixels (float64)."""
    x = images_u8.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)  # a constant channel stays finite
    return mean, std


def normalise(images_u8: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    x = images_u8.astype(np.float32) / 255.0
    x = (x - mean.astype(np.float32)[None, :, None, None]) / std.astype(np.float32)[None, :, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------- backbones


class Cnn(nn.Sequential):
    def __init__(self, channels: int, height: int, width: int, features: int = 128):
        super().__init__(
            nn.Conv2d(channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 4) * (width // 4), features),
            nn.ReLU(),
        )
        self.features = features


class Mlp(nn.Sequential):
    def __init__(self, channels: int, height: int, width: int, hidden: int = 256, features: int = 128):
        super().__init__(
            nn.Flatten(),
            nn.Linear(channels * height * width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, features),
            nn.ReLU(),
        )
        self.features = features


def _conv3x3(cin: int, cout: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight)  # fan_in, gain sqrt(2)
    return conv


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + option-A shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = (cout - cin) // 2

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad, self.pad))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet, depth 6n + 2 (n=3: ResNet-20). Features D = 64."""

    def __init__(self, channels: int = 3, blocks: int = 3):
        super().__init__()
        self.conv = _conv3x3(channels, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        layers = []
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.features = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return x.mean(dim=(2, 3))


def build_backbone(net: str, channels: int, height: int, width: int) -> nn.Module:
    if net == "cnn":
        return Cnn(channels, height, width)
    if net == "mlp":
        return Mlp(channels, height, width)
    if net == "resnet20":
        if height % 4 or width % 4:
            raise ValueError("resnet20 needs H and W divisible by 4")
        return ResNet(channels, 3)
    raise ValueError(f"unknown net {net!r}")


# ---------------------------------------------------------------- heads


class SoftmaxHead(nn.Module):
    def __init__(self, features: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def class_weights(self) -> torch.Tensor:
        return self.fc.weight

    def derived_params(self) -> Optional[torch.Tensor]:
        return None


class SymmetricalHead(nn.Module):
    def __init__(self, features: int, classes: int, s: float = 16.0):
        super().__init__()
        self.v1 = nn.Parameter(torch.rand(features))
        self.v2 = nn.Parameter(torch.rand(features))
        self.s = float(s)
        t = 2.0 * math.pi * torch.arange(classes, dtype=torch.float64) / classes
        self.register_buffer("cos", t.cos().float().unsqueeze(1), persistent=False)  # C x 1
        self.register_buffer("sin", t.sin().float().unsqueeze(1), persistent=False)

    def basis(self) -> Tuple[torch.Tensor, torch.Tensor]:
        n1 = F.normalize(self.v1, dim=0, eps=1e-12)
        u = self.v2 - (n1 @ self.v2) * n1
        return n1, F.normalize(u, dim=0, eps=1e-12)

    def class_weights(self) -> torch.Tensor:
        n1, n2 = self.basis()
        return self.cos * n1.unsqueeze(0) + self.sin * n2.unsqueeze(0)  # C x D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * F.normalize(x, dim=1, eps=1e-12) @ self.class_weights().t()

    def derived_params(self) -> Optional[torch.Tensor]:
        return torch.stack([self.v1, self.v2])


class MarginHead(nn.Module):
    """NormFace / CosFace / ArcFace (field notes section 3), matching
    symfeat's src/heads: weights initialised like nn.Linear, cosine clamped
    to +-(1-1e-7), ArcFace falls back to cos t - m sin m past pi. Called with
    labels (training) the target logit carries the margin; without, s cos t."""

    def __init__(self, kind: str, features: int, classes: int, s: float, m: float):
        super().__init__()
        self.kind, self.s, self.m = kind, float(s), float(m)
        self.weight = nn.Parameter(torch.empty(classes, features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        cos = F.normalize(x, dim=1, eps=1e-12) @ F.normalize(self.weight, dim=1, eps=1e-12).t()
        if y is None or self.kind == "normface":
            return self.s * cos
        cy = cos.gather(1, y.view(-1, 1))
        if self.kind == "cosface":
            target = cy - self.m
        else:
            c = cy.clamp(-1 + 1e-7, 1 - 1e-7)
            phi = c * math.cos(self.m) - (1 - c * c).sqrt() * math.sin(self.m)
            target = torch.where(c < math.cos(math.pi - self.m), c - self.m * math.sin(self.m), phi)
        onehot = F.one_hot(y, cos.shape[1]).to(cos.dtype)
        return self.s * (cos + onehot * (target - cy))

    def class_weights(self) -> torch.Tensor:
        return self.weight

    def derived_params(self) -> Optional[torch.Tensor]:
        return None


def build_head(head: str, features: int, classes: int, s: float = 16.0, m: float = 0.0) -> nn.Module:
    if head == "softmax":
        return SoftmaxHead(features, classes)
    if head == "symmetrical":
        return SymmetricalHead(features, classes, s)
    if head in ("normface", "cosface", "arcface"):
        return MarginHead(head, features, classes, s, m)
    raise ValueError(f"unknown head {head!r}")


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        f = self.backbone(x)
        return self.head(f, y) if isinstance(self.head, MarginHead) else self.head(f)


def build_model(net: str, head: str, shape, classes: int, s: float = 16.0, m: float = 0.0) -> Classifier:
    """shape = (channels, height, width)."""
    backbone = build_backbone(net, *shape)
    return Classifier(backbone, build_head(head, backbone.features, classes, s, m))
