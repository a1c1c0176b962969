"""symfeat.head_logits against plain numpy computations of each head's
formula (field notes §3), for every head of `symfeat heads list`."""

import math

import numpy as np
import pytest

import symfeat
from conftest import blobs, cli, cli_error, save

CLAMP = 1 - 1e-7


def cosines(x, w):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    return xn @ wn.T


def with_target(cos, y, f):
    out = cos.copy()
    i = np.arange(len(y))
    out[i, y] = f(cos[i, y])
    return out


def arcface_target(c, m, easy):
    c = np.clip(c, -CLAMP, CLAMP)
    phi = c * math.cos(m) - np.sqrt(1 - c * c) * math.sin(m)
    if easy:
        return np.where(c > 0, phi, c)
    return np.where(c < math.cos(math.pi - m), c - m * math.sin(m), phi)


def psi(c, m):
    t = np.arccos(np.clip(c, -CLAMP, CLAMP))
    k = np.floor(m * t / math.pi)
    return (-1) ** k * np.cos(m * t) - 2 * k


def numpy_logits(head, x, y, w, b, p, step=0, classes=None):
    """The formulas as `symfeat heads list` states them, in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    if head in ("softmax", "center"):
        return x @ w.T + b
    if head == "normface":
        return p.get("s", 16.0) * cosines(x, w)
    if head == "cosface":
        s, m = p.get("s", 64.0), p.get("m", 0.35)
        return s * with_target(cosines(x, w), y, lambda c: c - m)
    if head == "arcface":
        s, m = p.get("s", 64.0), p.get("m", 0.5)
        return s * with_target(cosines(x, w), y,
                               lambda c: arcface_target(c, m, p.get("easy_margin", False)))
    if head == "combined":
        s, m1, m2, m3 = p.get("s", 64.0), p.get("m1", 1.0), p.get("m2", 0.3), p.get("m3", 0.2)
        return s * with_target(cosines(x, w), y,
                               lambda c: np.cos(m1 * np.arccos(np.clip(c, -CLAMP, CLAMP)) + m2) - m3)
    if head == "sphereface":
        m = p.get("m", 4)
        lam = p.get("lambda") or max(5.0, 1000.0 * (1 + 0.12 * step) ** -1.0)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return norm * with_target(cosines(x, w), y, lambda c: (lam * c + psi(c, m)) / (1 + lam))
    if head == "symmetrical":
        v1, v2 = w
        n1 = v1 / np.linalg.norm(v1)
        u = v2 - (v2 @ n1) * n1
        n2 = u / np.linalg.norm(u)
        ang = 2 * math.pi * np.arange(classes) / classes
        wk = np.cos(ang)[:, None] * n1 + np.sin(ang)[:, None] * n2
        return p.get("s", 16.0) * cosines(x, wk)
    raise AssertionError(head)


def cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


FIXED = ["polygon", "simplex", "orthoplex", "dcube"]

CASES = [
    ("softmax", {}), ("center", {}), ("normface", {}), ("normface", {"s": 30.0}),
    ("cosface", {}), ("cosface", {"s": 30.0, "m": 0.2}), ("arcface", {}),
    ("arcface", {"s": 64.0, "m": 0.5}), ("arcface", {"easy_margin": True}),
    ("combined", {}), ("sphereface", {}), ("sphereface", {"m": 2, "lambda": 0.5}),
    ("symmetrical", {}), ("symmetrical", {"s": 8.0}),
]


def test_every_head_of_the_list_is_covered():
    names = {h["name"] for h in symfeat.heads()}
    assert names == {c[0] for c in CASES} | set(FIXED)
    arc = next(h for h in symfeat.heads() if h["name"] == "arcface")
    assert {p["name"]: p["default"] for p in arc["params"]}["s"] == 64.0


@pytest.mark.parametrize("head,params", CASES)
def test_head_logits_equal_the_formula_in_numpy(head, params):
    x, y, w = blobs(n=300, d=12, c=6, seed=3, offset=0.0)
    b = np.linspace(-0.5, 0.5, 6).astype(np.float32) if head in ("softmax", "center") else None
    classes = None
    if head == "symmetrical":
        w, classes = w[:2], 6
    for step in ([0, 500] if head == "sphereface" else [0]):
        logits, loss = symfeat.head_logits(head, x, y, w, bias=b, classes=classes, step=step,
                                           **params)
        assert logits.shape == (300, 6) and logits.dtype == np.float32
        want = numpy_logits(head, x, y, w, b, params, step=step, classes=classes)
        scale = np.abs(want).max()
        np.testing.assert_allclose(logits, want, rtol=0, atol=2e-5 * scale)
        assert abs(loss - cross_entropy(want, y)) < 1e-4 * max(1.0, abs(loss))


def test_head_logits_equal_the_cli(symfeat_bin, tmp_path):
    x, y, w = blobs(n=200, d=8, c=4)
    f = save(tmp_path, x=x, y=y, w=w)
    out = tmp_path / "logits.npy"
    rc, stdout, err = cli(symfeat_bin, "heads", "eval", "--head", "arcface", "--param", "s=30",
                          "--param", "m=0.4", "--features", f["x"], "--labels", f["y"],
                          "--weights", f["w"], "--logits-out", out)
    assert rc == 0, err
    logits, loss = symfeat.head_logits("arcface", x, y, w, s=30, m=0.4)
    np.testing.assert_array_equal(logits, np.load(out))
    import json
    assert np.float32(loss) == np.float32(json.loads(stdout)["loss"])


@pytest.mark.parametrize("head", FIXED)
def test_fixed_heads_say_how_to_evaluate_them(head):
    x, y, w = blobs(n=50, d=8, c=4)
    with pytest.raises(ValueError, match="fixed classifiers build their own weights"):
        symfeat.head_logits(head, x, y, w)


def test_head_errors_match_the_cli(symfeat_bin, tmp_path):
    x, y, w = blobs(n=50, d=8, c=4)
    f = save(tmp_path, x=x, y=y, w=w)
    base = ["heads", "eval", "--features", f["x"], "--labels", f["y"], "--weights", f["w"]]
    cases = [
        (["--head", "arcface", "--param", "q=1"], dict(head="arcface", q=1), "--param", "param"),
        (["--head", "arcface", "--param", "m=3"], dict(head="arcface", m=3), "--param", "param"),
        (["--head", "softmax"], dict(head="softmax"), "--bias b.npy", "bias=<array>"),
        (["--head", "nope"], dict(head="nope"), '--head "nope"', 'head "nope"'),
    ]
    for args, kw, cli_word, py_word in cases:
        want = cli_error(symfeat_bin, *base, *args)
        head = kw.pop("head")
        with pytest.raises(ValueError) as e:
            symfeat.head_logits(head, x, y, w, **kw)
        assert str(e.value) == want.replace(cli_word, py_word, 1), (str(e.value), want)


def test_sphereface_lambda_is_given_as_lambda_():
    x, y, w = blobs(n=50, d=8, c=4)
    a, _ = symfeat.head_logits("sphereface", x, y, w, lambda_=0.5)
    b, _ = symfeat.head_logits("sphereface", x, y, w, **{"lambda": 0.5})
    c, _ = symfeat.head_logits("sphereface", x, y, w)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
