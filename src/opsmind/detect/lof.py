"""Local Outlier Factor (scikit-learn, novelty mode) on windowed features, refit on a bounded buffer."""

from __future__ import annotations

from sklearn.neighbors import LocalOutlierFactor

from opsmind.core import FloatArray
from opsmind.detect._buffered import BufferedDetector, feature_attribution, windowed_features
from opsmind.detect.base import DETECTORS
from opsmind.detect.robust_multivariate import center_scale

__all__ = ["LOF"]


@DETECTORS.register("lof")
class LOF(BufferedDetector):
    """Local Outlier Factor of each row's values, short-window mean and change from the previous row.

    The neighbourhoods are fitted on the windowed features of the last ``buffer`` learned rows (each feature
    divided by its robust scale, see :func:`~opsmind.detect.robust_multivariate.center_scale`, so that no metric
    dominates the distance by its unit) and refitted every ``refit_every`` rows; a row is scored by the last fit
    as ``-score_samples``, its LOF (about 1 for rows as dense as their neighbours, larger for outliers). Scores
    are computed with a ball tree, so a row's score does not depend on the rows scored with it.

    ``explain_one`` gives each dimension its robust deviation from the buffer's median, the mean over its three
    features of ``log(1 + |f - median| / scale)``, rescaled so the dimensions sum to the score: the distance
    that made the row an outlier is made of these per-feature deviations.

    Works for multivariate metrics with several normal regimes (LOF compares a row with its neighbours, not with
    one global centre). Cost grows with ``buffer`` times the number of scored rows; keep the buffer modest.

    Parameters
    ----------
    n_neighbors : int
        Neighbours defining the local density.
    window : int
        Rows in the window mean feature.
    buffer : int
        Most recent learned rows the model is fitted on.
    refit_every : int
        Learned rows between refits.
    min_train : int
        Rows to learn before the first fit (scores are 0.0 until then); at least ``n_neighbors + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> X[380, 0] += 9.0
    >>> det = LOF(min_train=200)
    >>> s = det.score(Frame.from_arrays(np.arange(400) * 60_000_000_000, X))
    >>> int(np.argmax(s)), int(np.argmax(det.explain_one(0.0, X[380])))
    (380, 0)
    """

    def __init__(
        self,
        n_neighbors: int = 20,
        window: int = 5,
        buffer: int = 2000,
        refit_every: int = 1440,
        min_train: int = 100,
    ) -> None:
        super().__init__(window=window, buffer=buffer, refit_every=refit_every, min_train=min_train)
        self.n_neighbors = n_neighbors

    def _fit(self, rows: FloatArray) -> None:
        feats = windowed_features(rows, 0, self.window)
        self.center_, self.scale_ = center_scale(feats, 0.99, 1e-3)
        self.lof_ = LocalOutlierFactor(
            n_neighbors=min(self.n_neighbors, len(feats) - 1), novelty=True, algorithm="ball_tree"
        ).fit(feats / self.scale_)

    def _score_rows(self, H: FloatArray, h: int) -> FloatArray:
        out: FloatArray = -self.lof_.score_samples(windowed_features(H, h, self.window) / self.scale_)
        return out

    def _explain_rows(self, H: FloatArray, h: int) -> FloatArray:
        feats = windowed_features(H, h, self.window)
        return feature_attribution(feats, self.center_, self.scale_, self._score_rows(H, h))
