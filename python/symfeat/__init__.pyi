# Type stubs of the symfeat package (the API of __init__.py).
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

Array = Union[npt.ArrayLike, np.ndarray]
PathLike = Union[str, os.PathLike]

__version__: str

def analyze(
    features: Array,
    labels: Array,
    weights: Array,
    bias: Optional[Array] = ...,
    scale: Optional[float] = ...,
    precision: str = ...,
) -> Dict[str, Any]: ...
def head_logits(
    head: str,
    features: Array,
    labels: Array,
    weights: Array,
    bias: Optional[Array] = ...,
    classes: Optional[int] = ...,
    step: int = ...,
    **params: Union[float, bool, str],
) -> Tuple[npt.NDArray[np.float32], float]: ...
def heads() -> List[Dict[str, Any]]: ...
def report(dir: PathLike) -> Dict[str, Any]: ...

class Probe:
    head: str
    def __init__(
        self,
        dir: PathLike,
        head: str = ...,
        scale: Optional[float] = ...,
        config: Optional[Dict[str, Any]] = ...,
        exist_ok: bool = ...,
        **params: Union[float, bool, str],
    ) -> None: ...
    @property
    def dir(self) -> Optional[str]: ...
    @property
    def scale(self) -> Optional[float]: ...
    def log(
        self,
        epoch: int,
        split: str,
        features: Array,
        labels: Array,
        weights: Array,
        bias: Optional[Array] = ...,
        scale: Optional[float] = ...,
    ) -> Dict[str, Any]: ...
    def log_epoch(
        self,
        epoch: int,
        *,
        train_loss: float,
        train_acc: float,
        test_loss: float,
        test_acc: float,
        lr: float,
        seconds: float = ...,
        images_per_s: float = ...,
    ) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Probe": ...
    def __exit__(self, *exc: Any) -> None: ...
