"""symfeat in-process: are a classifier's weights the centers of its classes?

The measurements of the ``symfeat`` command-line tool on numpy arrays (or
anything ``numpy.asarray`` takes: CPU torch tensors, lists), computed by the
same Rust library with the GIL released:

- :func:`analyze`: the geometry report of ``symfeat analyze --json``;
- :func:`head_logits`: a head's training logits and loss (``symfeat heads eval``);
- :class:`Probe`: a PyTorch run written as a symfeat run directory, which
  ``symfeat report DIR`` (or :func:`report`) turns into the same report as a
  symfeat run;
- :func:`heads`: every head with its formula and parameters.

float32 C-contiguous arrays are read in place; float64 is read in place by
:func:`analyze` and converted by :func:`head_logits` (the heads compute in
float32); other layouts are made contiguous first (a copy). The GIL is
released during the computation: do not write to the arrays from another
thread meanwhile (the result would be undefined). Errors are
``TypeError`` (not an array, a wrong dtype) or ``ValueError`` (everything
else), with the CLI's message in which the argument's name stands for the
file's.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _native

__all__ = ["analyze", "head_logits", "heads", "Probe", "report"]
__version__ = "0.1.0"

Array = Any  # numpy.ndarray, or anything numpy.asarray accepts


def _array(x: Array) -> np.ndarray:
    """A numpy view of ``x``; a copy only where it is not C-contiguous,
    aligned and in the machine's byte order."""
    a = np.asarray(x)
    if a.dtype.byteorder not in ("=", "|") and a.dtype.kind in "fiu":
        a = a.astype(a.dtype.newbyteorder("="))
    return np.require(a, requirements="CA")


def _opt(x: Optional[Array]) -> Optional[np.ndarray]:
    return None if x is None else _array(x)


def analyze(
    features: Array,
    labels: Array,
    weights: Array,
    bias: Optional[Array] = None,
    scale: Optional[float] = None,
    precision: str = "mixed",
) -> Dict[str, Any]:
    """The geometry of the classification layer (field notes §4), as
    ``symfeat analyze --json`` computes it: per-class angles between w_c and
    the class mean, the centred mean and the head's softmax center,
    compactness, NC1-NC4, the symmetry conditions, the separation.

    features: N x D float32/float64; labels: N integers in 0..C (every class
    present); weights: C x D (rows are w_c); bias: C values (a linear head);
    scale: s of a cosine head (NormFace, the symmetrical layer, margin
    heads), excluding ``bias``; precision: "mixed" (default) or "f64", as
    the CLI's ``--precision``.

    Returns a dict with the same keys and values as the CLI's JSON, e.g.
    ``res["mean_angle_w_mean_deg"]``, ``res["nc"]["nc1"]``,
    ``res["classes"][3]["angle_w_softmax_center_deg"]``.
    """
    text = _native.analyze(
        _array(features), _array(labels), _array(weights), _opt(bias), scale, precision
    )
    return json.loads(text)


def _word(name: str, v: Any) -> str:
    """One head parameter as the CLI's ``--param NAME=VALUE`` word
    (``lambda_``: SphereFace's ``lambda``, a Python keyword)."""
    if name == "lambda_":
        name = "lambda"
    if isinstance(v, bool):
        return f"{name}={'true' if v else 'false'}"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return f"{name}={float(v)!r}"
    if isinstance(v, str):
        return f"{name}={v}"
    raise TypeError(
        f"head parameter {name}: expected a number, a bool or a word, got {type(v).__name__}"
    )


def head_logits(
    head: str,
    features: Array,
    labels: Array,
    weights: Array,
    bias: Optional[Array] = None,
    classes: Optional[int] = None,
    step: int = 0,
    **params: Union[float, bool, str],
) -> Tuple[np.ndarray, float]:
    """A head's training logits (N x C float32, with the margin on the
    target class) and mean cross-entropy, as ``symfeat heads eval``.

    head: a name of :func:`heads` (``symfeat heads list``); its parameters as
    keyword arguments, defaults as the CLI's (e.g. ``s=64.0, m=0.5`` for
    arcface; ``s="auto"``, ``init="normal"`` and booleans as the CLI's
    words; SphereFace's ``lambda`` as ``lambda_``). weights: C x D class
    weights, or the symmetrical layer's 2 x D
    plane (v1, v2) with ``classes=C``; bias: C values (softmax, center).
    step: the optimizer step (SphereFace's lambda annealing).
    """
    words = [_word(k, v) for k, v in params.items()]
    return _native.head_logits(
        head, _array(features), _array(labels), _array(weights), _opt(bias), classes, step, words
    )


def heads() -> List[Dict[str, Any]]:
    """Every head: name, formula, whether it is a cosine head, and its
    parameters with their defaults (angles in radians)."""
    return json.loads(_native.heads())


def report(dir: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Build the report of a study or run directory (``symfeat report DIR``:
    report.html, summary.json, summary.md, figures/) and return the summary."""
    return json.loads(_native.report(os.fspath(dir)))


class Probe:
    """A run trained in PyTorch (or anywhere), written as a symfeat run
    directory so that ``symfeat report DIR`` renders it like a symfeat run.

    ``Probe(dir, head="normface", scale=16.0)`` creates ``dir`` (locked
    until :meth:`close` or the end of a ``with`` block) with ``config.toml``:
    the head and its parameters (``scale`` is the head's ``s``; other
    parameters as keyword arguments, as in :func:`head_logits`) and
    ``config``, a dict of ``symfeat train`` configuration fields describing
    your training (``dataset``, ``net``, ``lr``, ``batch``, ``seed``, ...;
    default dataset "custom", net "pytorch"; fields not given keep symfeat's
    defaults and mean nothing for your run). A directory holding a run
    already is refused unless ``exist_ok=True`` (same head: lines are added,
    an epoch logged again replaces the old line).

    After each epoch call :meth:`log` for the test split (and, if you like,
    a training subset) and :meth:`log_epoch` with the metrics the report's
    convergence and stability tests read (the report needs at least one
    :meth:`log_epoch`).
    """

    def __init__(
        self,
        dir: Union[str, os.PathLike],
        head: str = "softmax",
        scale: Optional[float] = None,
        config: Optional[Dict[str, Any]] = None,
        exist_ok: bool = False,
        **params: Union[float, bool, str],
    ) -> None:
        if scale is not None:
            if "s" in params:
                raise ValueError("give the head's scale once: scale= or s=")
            params["s"] = scale
        words = [_word(k, v) for k, v in params.items()]
        cfg = json.dumps(config or {})
        self._native = _native.Probe(os.fspath(dir), head, words, cfg, exist_ok)
        self.head = head

    @property
    def dir(self) -> Optional[str]:
        """The run directory (None once closed)."""
        d = self._native.dir
        return None if d is None else os.fspath(d)

    @property
    def scale(self) -> Optional[float]:
        """The head's s (None for a linear head); with ``s="auto"`` the
        analyses use the symmetrical layer's s for the weights' C instead."""
        return self._native.scale

    def log(
        self,
        epoch: int,
        split: str,
        features: Array,
        labels: Array,
        weights: Array,
        bias: Optional[Array] = None,
        scale: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Analyse ``features`` of ``split`` ("test" or "train") after
        ``epoch`` (from 1) against the class ``weights`` (C x D; ``bias``
        for softmax), add the line to probe.jsonl (the latest epoch's test
        line also writes class_weights.npy), and return the analysis (as
        :func:`analyze`). ``scale``: this epoch's s of a cosine head that
        learns it (``learn_scale=1``); default the head's."""
        text = self._native.log(
            epoch, split, _array(features), _array(labels), _array(weights), _opt(bias), scale
        )
        return json.loads(text)

    def log_epoch(
        self,
        epoch: int,
        *,
        train_loss: float,
        train_acc: float,
        test_loss: float,
        test_acc: float,
        lr: float,
        seconds: float = 0.0,
        images_per_s: float = 0.0,
    ) -> None:
        """Add the metrics of ``epoch`` (from 1) to metrics.jsonl: mean
        losses, accuracies as fractions in [0, 1], the learning rate; the
        wall time and speed if you measured them (0: not measured)."""
        self._native.log_epoch(
            epoch, float(train_loss), float(train_acc), float(test_loss), float(test_acc),
            float(lr), float(seconds), float(images_per_s),
        )

    def close(self) -> None:
        """Release the directory (every line is on disk already)."""
        self._native.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
