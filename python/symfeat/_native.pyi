# Type stubs of the Rust module (python/src/lib.rs); use the symfeat API instead.
import pathlib
from typing import List, Optional, Tuple

import numpy as np
import numpy.typing as npt

def analyze(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    bias: Optional[np.ndarray] = ...,
    scale: Optional[float] = ...,
    precision: str = ...,
) -> str: ...
def head_logits(
    head: str,
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    bias: Optional[np.ndarray] = ...,
    classes: Optional[int] = ...,
    step: int = ...,
    params: List[str] = ...,
) -> Tuple[npt.NDArray[np.float32], float]: ...
def heads() -> str: ...
def report(dir: str) -> str: ...

class Probe:
    def __init__(
        self, dir: str, head: str, params: List[str], config_json: str, exist_ok: bool
    ) -> None: ...
    @property
    def scale(self) -> Optional[float]: ...
    @property
    def dir(self) -> Optional[pathlib.Path]: ...
    def log(
        self,
        epoch: int,
        split: str,
        features: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
        bias: Optional[np.ndarray] = ...,
        scale: Optional[float] = ...,
    ) -> str: ...
    def log_epoch(
        self,
        epoch: int,
        train_loss: float,
        train_acc: float,
        test_loss: float,
        test_acc: float,
        lr: float,
        seconds: float = ...,
        images_per_s: float = ...,
    ) -> None: ...
    def close(self) -> None: ...
def _panic_for_tests() -> None: ...
