"""ADGAN image anomaly detection (Deecke et al., ECML-PKDD 2018) from Python.

The same Rust library as the ``adgan`` command, called in process: training, the ADGAN
search, the baselines, calibrated p-values. Three ways in:

* ``adgan.train(data, normal_class=..., out=...)`` trains a run folder, as ``adgan train``;
* ``adgan.Run.load(path)`` opens a run (from either), and ``run.score(images)``,
  ``run.p_values(images)`` and ``run.predict(images, alpha=0.05)`` score images with it;
* ``adgan.ADGAN(**settings).fit(X).decision_function(X)``: an estimator in the style of
  scikit-learn and PyOD (higher scores are more anomalous, ``predict`` gives 1 for anomalous).

Images are a ``numpy.ndarray`` or ``torch.Tensor`` of shape [N, C, H, W] or [N, H, W],
``uint8`` (0-255) or float in [0, 1] (as torchvision's ``ToTensor`` gives), or a list of file
paths. They are fitted to the run's size and channels as ``adgan score`` fits files.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, NamedTuple, Optional

import numpy as np

from . import _adgan

__all__ = ["ADGAN", "Detection", "Run", "load_images", "train"]

DEFAULT_ALPHA = 0.05


def _images_u8(images: Any) -> np.ndarray:
    """``images`` as a contiguous uint8 array N x H x W x C, checked; ValueError otherwise."""
    if hasattr(images, "detach") and hasattr(images, "cpu"):  # a torch.Tensor
        images = images.detach().cpu().numpy()
    array = np.asarray(images)
    if array.dtype == object or array.dtype.kind in "USV":
        raise ValueError(f"images must be numbers, not {array.dtype}")
    if array.size == 0:
        raise ValueError("no images: the array is empty")
    if array.ndim == 3:
        array = array[:, None, :, :]
    if array.ndim != 4:
        raise ValueError(
            f"images must have shape [N, C, H, W] or [N, H, W], not {list(array.shape)}"
        )
    if array.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have 1 or 3 channels in axis 1 ([N, C, H, W]), not {array.shape[1]} "
            f"(shape {list(array.shape)}; a channels-last array needs .transpose(0, 3, 1, 2))"
        )
    if array.dtype == np.uint8:
        u8 = array
    elif array.dtype.kind in "fc" or array.dtype.kind in "iub":
        values = array.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("images hold NaN or infinite values")
        if array.dtype.kind == "f":
            if values.min() < 0.0 or values.max() > 1.0:
                raise ValueError(
                    f"float images must lie in [0, 1] (found {values.min():.3g} to "
                    f"{values.max():.3g}); pass uint8 0-255, or scale to [0, 1]"
                )
            values = values * 255.0
        elif values.min() < 0 or values.max() > 255:
            raise ValueError("integer images must lie in 0-255")
        u8 = np.rint(values).astype(np.uint8)
    else:
        raise ValueError(f"images must be uint8 or float, not {array.dtype}")
    return np.ascontiguousarray(u8.transpose(0, 2, 3, 1))


def _is_paths(images: Any) -> bool:
    return isinstance(images, (list, tuple)) and len(images) > 0 and all(
        isinstance(p, (str, os.PathLike)) for p in images
    )


def load_images(dataset: str, data=None, split: str = "test", image_size: int = 32,
                channels: Optional[int] = None, fit: str = "pad"):
    """Reads a data set as ``adgan`` reads it (``mnist``, ``cifar10``, ``idx``, ``folder``,
    ``demo``): returns (images [N, C, H, W] float32 in [0, 1], labels or None, class names,
    ids)."""
    path = None if data is None else os.fspath(data)
    return _adgan.load_images(dataset, path, split, image_size, channels, fit)


class Detection(NamedTuple):
    """What one search over some images gives: their anomaly scores, their p-values under the
    run's calibration, and which are flagged at alpha (1 anomalous, 0 normal)."""

    scores: np.ndarray
    p_values: np.ndarray
    anomalous: np.ndarray


class Run:
    """A trained run folder, ready to score images (see the module's docstring)."""

    def __init__(self, inner: "_adgan.Run"):
        self._run = inner

    @classmethod
    def load(cls, path: "str | os.PathLike", device: str = "cpu") -> "Run":
        """Opens the run in the folder ``path`` (written by ``adgan train`` or ``train``)."""
        return cls(_adgan.Run.load(os.fspath(path), device))

    @property
    def path(self) -> str:
        """The run folder."""
        return os.fspath(self._run.path)

    @property
    def image_size(self) -> int:
        return self._run.image_size

    @property
    def channels(self) -> int:
        return self._run.channels

    @property
    def iteration(self) -> int:
        return self._run.iteration

    def _score(self, images: Any, method: Optional[str], alpha: float, search: dict):
        if _is_paths(images):
            return self._run.score([os.fspath(p) for p in images], method, alpha, **search)
        if isinstance(images, (list, tuple)) and len(images) == 0:
            raise ValueError("no images: the list is empty")
        return self._run.score(_images_u8(images), method, alpha, **search)

    def score(self, images: Any, method: Optional[str] = None, **search) -> np.ndarray:
        """Anomaly scores of ``images`` (higher is more anomalous) by ``method`` (default: the
        run's, ``adgan-ic`` when calibrated). ``search`` takes the command's search settings:
        ``n_seed``, ``k``, ``lr_z``, ``lr_theta``, ``search_seed``, ``batch_images``,
        ``pca_dim``, and ``cuda_graph`` (True: replay the search from a CUDA graph, on a CUDA
        device only)."""
        scores, _, _ = self._score(images, method, DEFAULT_ALPHA, search)
        return scores

    def p_values(self, images: Any, method: Optional[str] = None, **search) -> np.ndarray:
        """Conformal p-values of ``images`` under the run's calibration (small is anomalous);
        ValueError when the run has none for this method and search."""
        _, p, name = self._score(images, method, DEFAULT_ALPHA, search)
        if p is None:
            raise ValueError(
                f"the run has no calibration for {name} with these search settings: calibrate "
                f"it (adgan calibrate --model {self.path}) or train with calibration_fraction > 0"
            )
        return p

    def predict(
        self, images: Any, alpha: float = DEFAULT_ALPHA, method: Optional[str] = None, **search
    ) -> np.ndarray:
        """1 for images flagged as anomalous (p-value at most ``alpha``: on normal images at
        most that fraction is flagged, in expectation), 0 otherwise."""
        _, p, name = self._score(images, method, alpha, search)
        if p is None:
            raise ValueError(f"the run has no calibration for {name}: no decisions")
        return (p <= alpha).astype(np.int64)

    def detect(
        self, images: Any, alpha: float = DEFAULT_ALPHA, method: Optional[str] = None, **search
    ) -> Detection:
        """Scores, p-values and decisions of ``images`` from one search (``score``,
        ``p_values`` and ``predict`` each search again)."""
        scores, p, name = self._score(images, method, alpha, search)
        if p is None:
            raise ValueError(f"the run has no calibration for {name}: no decisions")
        return Detection(scores, p, (p <= alpha).astype(np.int64))

    def __repr__(self) -> str:
        return repr(self._run)


def train(
    data: Any,
    normal_class: Optional[str] = None,
    out: "str | os.PathLike | None" = None,
    dataset: str = "folder",
    **settings,
) -> Run:
    """Trains a run as ``adgan train`` does and returns it. ``data`` is a folder (or a data
    set of kind ``dataset``: ``mnist``, ``cifar10``, ``idx``, ``folder``, ``demo``), or images
    (array, tensor) that are written into ``out/normal-images`` first. ``settings`` have the
    command's names and defaults: ``recipe``, ``iterations``, ``batch_size``, ``width``,
    ``latent_dim``, ``image_size``, ``channels``, ``objective``, ``lr``, ``beta1``, ``clip``,
    ``lambda`` (a keyword: pass it with ``**{"lambda": 10}``), ``init``, ``n_critic``,
    ``seed``, ``calibration_fraction``, ``fit``, ``resume``, ``strict``, ``device``, and the
    search the calibration is scored with (``n_seed``, ``k``, ``lr_z``, ``lr_theta``,
    ``search_seed``: score with the same ones to get p-values), ``ensemble`` (True: also
    fit the ensemble's classic members on the training images and calibrate
    ``method="ensemble"``), and ``cuda_graph`` (True: replay each iteration from a CUDA
    graph, on a CUDA device only). Ctrl-C stops it; ``resume=True`` continues."""
    if out is None:
        raise ValueError("out: give the run folder to train into")
    out = os.fspath(out)
    if isinstance(normal_class, int):
        normal_class = str(normal_class)
    if not isinstance(data, (str, os.PathLike)) and data is not None:
        folder = os.path.join(out, "normal-images")
        if not (settings.get("resume") and os.path.isdir(folder)):
            _adgan.write_pngs(_images_u8(data).copy(), folder)
        data, dataset = folder, "folder"
    path = None if data is None else os.fspath(data)
    return Run(_adgan.train(out, path, dataset, normal_class, **settings))


class ADGAN:
    """ADGAN as an estimator in the style of scikit-learn and PyOD.

    ``fit(X)`` trains a GAN on the normal images X (kept with the run in ``out``, a temporary
    folder when None), holding out ``calibration_fraction`` of them to calibrate p-values.
    ``decision_function(X)`` gives anomaly scores (higher is more anomalous, as in PyOD),
    ``score_samples(X)`` their negatives (higher is more normal, as in scikit-learn), and
    ``predict(X)`` 1 for anomalous at level ``alpha``, 0 for normal.
    """

    def __init__(
        self,
        method: Optional[str] = None,
        iterations: Optional[int] = None,
        batch_size: Optional[int] = None,
        width: Optional[int] = None,
        latent_dim: int = 256,
        image_size: int = 32,
        lr: Optional[float] = None,
        n_seed: Optional[int] = None,
        k: Optional[int] = None,
        alpha: float = DEFAULT_ALPHA,
        calibration_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        out: Optional[str] = None,
    ):
        self.method = method
        self.iterations = iterations
        self.batch_size = batch_size
        self.width = width
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.lr = lr
        self.n_seed = n_seed
        self.k = k
        self.alpha = alpha
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.device = device
        self.out = out

    _PARAMS = (
        "method", "iterations", "batch_size", "width", "latent_dim", "image_size", "lr",
        "n_seed", "k", "alpha", "calibration_fraction", "seed", "device", "out",
    )

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's settings (scikit-learn's convention, so that ``clone`` works)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params) -> "ADGAN":
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"unknown setting {name!r} of ADGAN: one of {self._PARAMS}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if v != ADGAN().get_params()[k]}
        return "ADGAN(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def fit(self, X: Any, y: Any = None) -> "ADGAN":
        """Trains on the normal images X (labels ``y`` are ignored: all of X is normal)."""
        images = _images_u8(X)
        out = self.out or tempfile.mkdtemp(prefix="adgan-")
        run_dir = os.path.join(out, "run")
        if os.path.exists(os.path.join(run_dir, "checkpoint.safetensors")):
            raise ValueError(
                f"{run_dir} already holds a trained run: give another out, or load it with "
                f"adgan.Run.load"
            )
        settings = dict(
            iterations=self.iterations, batch_size=self.batch_size, width=self.width,
            latent_dim=self.latent_dim, image_size=self.image_size, lr=self.lr,
            seed=self.seed, calibration_fraction=self.calibration_fraction, device=self.device,
            channels=int(images.shape[3]), **self._search(),
        )
        folder = os.path.join(out, "normal-images")
        _adgan.write_pngs(images, folder)
        self.run_ = Run(_adgan.train(run_dir, folder, "folder", None, **settings))
        self.n_features_in_ = int(np.prod(images.shape[1:]))
        return self

    def _search(self) -> dict:
        return {k: v for k, v in (("n_seed", self.n_seed), ("k", self.k)) if v is not None}

    def _check_fitted(self) -> Run:
        if not hasattr(self, "run_"):
            raise ValueError("this ADGAN is not fitted yet: call fit(X) first")
        return self.run_

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores of X: higher is more anomalous."""
        return self._check_fitted().score(X, self.method, **self._search())

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality scores of X (the negated anomaly scores): higher is more normal."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for images flagged as anomalous at level ``alpha``, 0 for normal ones."""
        return self._check_fitted().predict(X, self.alpha, self.method, **self._search())

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).predict(X)
