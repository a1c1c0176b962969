"""symfeat.Probe: a training loop outside symfeat (numpy here, PyTorch for
users) writes a run directory that `symfeat report` renders."""

import json
import math

import numpy as np
import pytest

import symfeat
from conftest import blobs, cli


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_numpy(probe, epochs=6, seed=0):
    """Softmax regression on fixed random ReLU features, by SGD, probed after
    every epoch: the loop a PyTorch user writes, without torch."""
    rng = np.random.default_rng(seed)
    x, y, _ = blobs(n=1200, d=10, c=4, seed=seed)
    proj = rng.normal(size=(10, 24)).astype(np.float32)
    h = np.maximum(x @ proj, 0)  # "features" of a frozen backbone
    h_tr, y_tr, h_te, y_te = h[:900], y[:900], h[900:], y[900:]
    w = (0.01 * rng.normal(size=(4, 24))).astype(np.float32)
    b = np.zeros(4, np.float32)
    lr = 0.01
    for epoch in range(1, epochs + 1):
        for i in range(0, 900, 100):
            hb, yb = h_tr[i:i + 100], y_tr[i:i + 100]
            g = softmax(hb @ w.T + b)
            g[np.arange(len(yb)), yb] -= 1
            w -= lr * (g.T @ hb) / len(yb)
            b -= lr * g.mean(axis=0)

        def metrics(hh, yy):
            p = softmax(hh @ w.T + b)
            return float(-np.log(p[np.arange(len(yy)), yy]).mean()), float((p.argmax(1) == yy).mean())

        tr_loss, tr_acc = metrics(h_tr, y_tr)
        te_loss, te_acc = metrics(h_te, y_te)
        probe.log(epoch, "test", h_te, y_te, w, bias=b)
        probe.log(epoch, "train", h_tr[:300], y_tr[:300], w, bias=b)
        probe.log_epoch(epoch, train_loss=tr_loss, train_acc=tr_acc, test_loss=te_loss,
                        test_acc=te_acc, lr=lr)
    return h_te, y_te, w, b


def test_a_numpy_training_loop_writes_a_run_that_symfeat_report_renders(symfeat_bin, tmp_path):
    run = tmp_path / "numpy-run"
    with symfeat.Probe(run, head="softmax", config={"dataset": "blobs", "net": "numpy-mlp",
                                                    "lr": 0.01, "batch": 100, "seed": 0}) as p:
        h_te, y_te, w, b = train_numpy(p)
    lines = [json.loads(l) for l in (run / "probe.jsonl").read_text().splitlines()]
    assert [(l["epoch"], l["split"]) for l in lines][:3] == [(1, "test"), (1, "train"), (2, "test")]
    # The last test line is what symfeat.analyze says of the same arrays.
    assert lines[-2]["analysis"] == symfeat.analyze(h_te, y_te, w, bias=b)
    np.testing.assert_array_equal(np.load(run / "class_weights.npy"), w)
    rc, out, err = cli(symfeat_bin, "report", run)
    assert rc == 0, err
    assert (run / "report.html").exists() and "softmax" in out
    summary = json.loads((run / "summary.json").read_text())
    assert symfeat.report(run) == summary
    assert summary["variants"][0]["head"] == "softmax"
    cfg = (run / "config.toml").read_text()
    assert 'net = "numpy-mlp"' in cfg and "epochs = 6" in cfg


def test_a_cosine_probe_uses_the_heads_scale(tmp_path):
    x, y, w = blobs()
    with symfeat.Probe(tmp_path / "r", head="normface", scale=16.0) as p:
        assert p.scale == 16.0
        assert p.log(1, "test", x, y, w) == symfeat.analyze(x, y, w, scale=16.0)
    with symfeat.Probe(tmp_path / "r2", head="arcface") as p:
        assert p.scale == 64.0  # the CLI's default s of arcface
    with symfeat.Probe(tmp_path / "r3", head="softmax") as p:
        assert p.scale is None


def test_probe_misuse_is_a_clear_error(tmp_path):
    x, y, w = blobs()
    run = tmp_path / "r"
    p = symfeat.Probe(run, head="normface")
    with pytest.raises(ValueError, match="being written by another"):
        symfeat.Probe(run, head="normface", exist_ok=True)
    with pytest.raises(ValueError, match='split "val"'):
        p.log(1, "val", x, y, w)
    with pytest.raises(ValueError, match="epoch = 0"):
        p.log(0, "test", x, y, w)
    with pytest.raises(ValueError, match="test_acc = 1.5"):
        p.log_epoch(1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=1.5, lr=0.1)
    with pytest.raises(ValueError, match="train_loss = NaN"):
        p.log_epoch(1, train_loss=float("nan"), train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.1)
    with pytest.raises(ValueError, match="non-finite"):
        p.log(1, "test", np.full_like(x, np.inf), y, w)
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.log(1, "test", x, y, w)
    with pytest.raises(ValueError, match="exist_ok"):
        symfeat.Probe(run, head="normface")
    with pytest.raises(ValueError, match="choose another directory"):
        symfeat.Probe(run, head="arcface", exist_ok=True)
    with pytest.raises(ValueError, match="config: unknown field `lr_typo`"):
        symfeat.Probe(tmp_path / "r4", config={"lr_typo": 1})
    with pytest.raises(ValueError, match="has no parameter"):
        symfeat.Probe(tmp_path / "r5", head="softmax", scale=16.0)
    with symfeat.Probe(run, head="normface", exist_ok=True) as p2:
        p2.log_epoch(2, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.1)


def p_max(s, c):
    cos = np.cos(2 * np.pi * np.arange(c) / c)
    return math.exp(s) / np.exp(s * cos).sum()


def test_scale_auto_and_a_learned_scale_reach_the_analysis(tmp_path):
    x, y, w = blobs(c=5)
    with symfeat.Probe(tmp_path / "auto", head="symmetrical", s="auto") as p:
        s = p.log(1, "test", x, y, w)["head"]["Cosine"]["scale"]
    # The smallest s whose capped target probability reaches 0.99 for C = 5.
    assert abs(p_max(s, 5) - 0.99) < 1e-9 and p_max(s * 0.999, 5) < 0.99
    with symfeat.Probe(tmp_path / "learned", head="symmetrical", learn_scale=1) as p:
        assert p.log(1, "test", x, y, w, scale=9.5) == symfeat.analyze(x, y, w, scale=9.5)
    with symfeat.Probe(tmp_path / "linear", head="softmax") as p:
        with pytest.raises(ValueError, match="linear"):
            p.log(1, "test", x, y, w, scale=9.5)


def test_class_weights_are_the_latest_test_epochs(tmp_path):
    x, y, w = blobs()
    with symfeat.Probe(tmp_path / "r", head="normface") as p:
        p.log(2, "test", x, y, w)
        p.log(1, "test", x, y, 2 * w)
        p.log(2, "train", x, y, 3 * w)
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "class_weights.npy"), w)
