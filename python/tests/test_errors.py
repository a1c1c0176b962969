"""Bad input: a Python exception (TypeError for what is not an array or has
a wrong dtype, ValueError otherwise) with the CLI's message, the file's name
replaced by the argument's; never a crash of the interpreter."""

import numpy as np
import pytest

import symfeat
from conftest import blobs, cli_error, save

NAMES = {"x": ("features", "features"), "y": ("labels", "labels"),
         "w": ("weights", "class weights"), "b": ("bias", "bias")}


def python_words(message, files):
    """The CLI's message with each file named as the Python argument."""
    for key, path in files.items():
        arg, what = NAMES[key]
        message = message.replace(f"{path} ({what})", arg).replace(str(path), arg)
    # Options are spelled as the arguments.
    return message.replace("--scale", "scale").replace("--bias", "bias")


def nan_at(x, i, j):
    x = x.copy()
    x[i, j] = np.nan
    return x


def cases():
    x, y, w = blobs(n=60, d=6, c=3)
    neg = y.copy()
    neg[7] = -2
    return {
        "nan feature": (dict(x=nan_at(x, 5, 2), y=y, w=w), {}, ValueError),
        "inf weight": (dict(x=x, y=y, w=np.where(np.arange(18).reshape(3, 6) == 4, np.inf, w)),
                       {}, ValueError),
        "label out of range": (dict(x=x, y=np.where(y == 2, 3, y), w=w), {}, ValueError),
        "negative label": (dict(x=x, y=neg, w=w), {}, ValueError),
        "class without sample": (dict(x=x, y=np.where(y == 1, 0, y), w=w), {}, ValueError),
        "fewer labels": (dict(x=x, y=y[:-1], w=w), {}, ValueError),
        "D mismatch": (dict(x=x, y=y, w=w[:, :5]), {}, ValueError),
        "one class": (dict(x=x, y=np.zeros_like(y), w=w[:1]), {}, ValueError),
        "bias length": (dict(x=x, y=y, w=w, b=np.zeros(4, np.float32)), {}, ValueError),
        "zero weight row": (dict(x=x, y=y, w=np.where(np.arange(3)[:, None] == 1, 0, w)
                                 .astype(np.float32)), {}, ValueError),
        "1-D features": (dict(x=x[:, 0].copy(), y=y, w=w), {}, ValueError),
        "2-D labels": (dict(x=x, y=y.reshape(-1, 1), w=w), {}, ValueError),
        "int features": (dict(x=x.astype(np.int32), y=y, w=w), {}, TypeError),
        "float labels": (dict(x=x, y=y.astype(np.float32), w=w), {}, TypeError),
        "float16 weights": (dict(x=x, y=y, w=w.astype(np.float16)), {}, TypeError),
        "scale and bias": (dict(x=x, y=y, w=w, b=np.zeros(3, np.float32)), {"scale": 16.0},
                           ValueError),
        "negative scale": (dict(x=x, y=y, w=w), {"scale": -1.0}, ValueError),
        "equal class means": (dict(x=np.ones_like(x), y=y, w=w), {}, ValueError),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_bad_input_raises_the_cli_message(symfeat_bin, tmp_path, name):
    arrays, kw, exc = cases()[name]
    files = save(tmp_path, **arrays)
    args = ["analyze", "--features", files["x"], "--labels", files["y"], "--weights", files["w"]]
    if "b" in files:
        args += ["--bias", files["b"]]
    if "scale" in kw:
        args += ["--scale", kw["scale"]]
    want = python_words(cli_error(symfeat_bin, *args), files)
    with pytest.raises(exc) as e:
        symfeat.analyze(arrays["x"], arrays["y"], arrays["w"], bias=arrays.get("b"), **kw)
    assert str(e.value) == want


def test_what_is_not_an_array_is_a_type_error():
    x, y, w = blobs(n=30, d=4, c=3)
    with pytest.raises(TypeError, match="features: dtype must be float32 or float64"):
        symfeat.analyze([["a", "b"]], y, w)
    with pytest.raises(TypeError):
        symfeat.analyze(x, y, w, scale="big")
    with pytest.raises(ValueError, match='precision "f16"'):
        symfeat.analyze(x, y, w, precision="f16")


def test_empty_and_degenerate_arrays_do_not_crash():
    x, y, w = blobs(n=30, d=4, c=3)
    for args in [(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), w),
                 (np.zeros((30, 0), np.float32), y, np.zeros((3, 0), np.float32)),
                 (x, y, np.zeros((0, 4), np.float32))]:
        with pytest.raises(ValueError):
            symfeat.analyze(*args)
    with pytest.raises(ValueError):
        symfeat.head_logits("normface", np.zeros((0, 4), np.float32), np.zeros(0, np.int64), w)


def test_a_panic_is_a_runtime_error_and_the_interpreter_goes_on():
    from symfeat import _native
    with pytest.raises(RuntimeError, match="internal error in symfeat .*a panic for the tests"):
        _native._panic_for_tests()
    x, y, w = blobs(n=30, d=4, c=3)
    assert symfeat.analyze(x, y, w)["classes"][0]["class"] == 0


def test_out_of_range_integers_are_value_errors(tmp_path):
    x, y, w = blobs(n=30, d=4, c=3)
    with pytest.raises(ValueError, match="classes=-3: expected at least 2 classes"):
        symfeat.head_logits("symmetrical", x, y, w[:2], classes=-3)
    with pytest.raises(ValueError, match="step=-1"):
        symfeat.head_logits("normface", x, y, w, step=-1)
    # More logits than any evaluation needs at once: an error, not an abort.
    with pytest.raises(ValueError, match="in batches"):
        symfeat.head_logits("symmetrical", x, y, w[:2], classes=10**12)
    with symfeat.Probe(tmp_path / "r", head="normface") as p:
        with pytest.raises(ValueError, match="epoch = -1: epochs are counted from 1"):
            p.log(-1, "test", x, y, w)
        with pytest.raises(ValueError, match="epoch = -2"):
            p.log_epoch(-2, train_loss=1, train_acc=0.5, test_loss=1, test_acc=0.5, lr=0.1)
