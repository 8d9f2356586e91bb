"""Isolation Forest (scikit-learn) on windowed features, refit on a bounded buffer."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest as _SkIsolationForest

from opsmind.core import FloatArray
from opsmind.detect._buffered import BufferedDetector, feature_attribution, windowed_features
from opsmind.detect.base import DETECTORS
from opsmind.detect.robust_multivariate import center_scale

__all__ = ["IsolationForest"]


def _avg_path_length(n: FloatArray) -> FloatArray:
    """Expected path length of an unsuccessful search in a binary tree of ``n`` points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    big = n > 2
    out[n == 2] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@DETECTORS.register("iforest")
class IsolationForest(BufferedDetector):
    """Isolation Forest on each row's values, their short-window mean and their change from the previous row.

    The forest (scikit-learn, ``random_state=seed``) is fitted on the windowed features of the last ``buffer``
    learned rows and refitted every ``refit_every`` rows; a row is scored by the last fitted forest as
    ``-score_samples``, the isolation score ``2^(-E[h(x)]/c(n))`` in (0, 1] (about 0.5 for normal rows).

    ``explain_one`` gives each dimension its robust deviation from the buffer (the mean over its three features
    of ``log(1 + |f - median| / scale)``, scale as in
    :func:`~opsmind.detect.robust_multivariate.center_scale`), rescaled so the dimensions sum to the score. The
    forest's own path depths are not used: its splits are drawn within the training range, so a value beyond that
    range is isolated no sooner than the most extreme training value, and a depth-based credit (DIFFI-style)
    spreads almost evenly over the dimensions when a metric leaves its range, the commonest machine fault.

    Works for multivariate metrics whose anomalies are rare combinations inside the ranges seen in training
    (e.g. two metrics that usually move together diverge); being tree-based, it needs no scaling. It is weak on
    values beyond the training range (see above): ``robust_multivariate`` handles those.
    Refits are the expensive part (bounded by ``buffer`` and ``max_samples``).
    A fault that lasts longer than ``buffer`` rows becomes normal to it.

    Parameters
    ----------
    n_estimators : int
        Trees in the forest.
    max_samples : int
        Rows drawn for each tree (capped at the buffered rows).
    window : int
        Rows in the window mean feature.
    buffer : int
        Most recent learned rows the forest is fitted on.
    refit_every : int
        Learned rows between refits.
    min_train : int
        Rows to learn before the first fit (scores are 0.0 until then).
    seed : int
        Random state of the forest.

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> X[:, 1] = X[:, 0] + 0.05 * rng.normal(size=600)  # two metrics that move together ...
    >>> X[550, :2] = [1.5, -1.5]                          # ... until they do not
    >>> f = Frame.from_arrays(np.arange(600) * 60_000_000_000, X)
    >>> det = IsolationForest(n_estimators=50, min_train=300)
    >>> s = det.score(f)
    >>> bool(s[550] > np.quantile(s[300:], 0.95))
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        window: int = 5,
        buffer: int = 4096,
        refit_every: int = 1440,
        min_train: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(window=window, buffer=buffer, refit_every=refit_every, min_train=min_train)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed

    def _fit(self, rows: FloatArray) -> None:
        feats = windowed_features(rows, 0, self.window)
        forest = _SkIsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(feats)),
            random_state=self.seed,
        ).fit(feats)
        # Per tree: the structure, its feature columns and each node's path length h = depth + c(size).
        self.trees_ = [
            (est.tree_, np.asarray(cols), est.tree_.compute_node_depths() - 1.0
             + _avg_path_length(est.tree_.n_node_samples))
            for est, cols in zip(forest.estimators_, forest.estimators_features_, strict=True)
        ]
        self.center_, self.scale_ = center_scale(feats, 0.99, 1e-3)
        self.norm_ = float(_avg_path_length(np.array([forest.max_samples_]))[0])

    def _leaves(self, feats: FloatArray) -> list[npt.NDArray[np.intp]]:
        return [tree.apply(np.ascontiguousarray(feats[:, cols], dtype=np.float32)) for tree, cols, _ in self.trees_]

    def _score_rows(self, H: FloatArray, h: int) -> FloatArray:
        feats = windowed_features(H, h, self.window)
        total = np.zeros(len(feats))
        for (_, _, length), leaf in zip(self.trees_, self._leaves(feats), strict=True):
            total += length[leaf]
        out: FloatArray = 2.0 ** (-total / len(self.trees_) / max(self.norm_, 1e-12))
        return out

    def _explain_rows(self, H: FloatArray, h: int) -> FloatArray:
        feats = windowed_features(H, h, self.window)
        return feature_attribution(feats, self.center_, self.scale_, self._score_rows(H, h))
