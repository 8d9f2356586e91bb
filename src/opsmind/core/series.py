"""Typed time series: one ``Frame`` holds timestamps and one or more value columns.

Documented input behaviour (what :func:`Frame.from_pandas` does with imperfect data):

- an empty input is rejected (``DataError``: "no data rows");
- text in a value column is rejected with the row and column named;
- unsorted timestamps are sorted (stable), and the count is reported in ``Frame.notes``;
- duplicate timestamps keep the last row, and the count is reported in ``Frame.notes``;
- NaN values are kept: detectors score a NaN row 0.0 and do not learn from it;
- gaps (irregular spacing) are kept as they are: time comes in with the data;
- a constant series is valid: detectors score it 0.0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.core.errors import DataError

__all__ = ["FloatArray", "Frame", "to_seconds"]

FloatArray = npt.NDArray[np.float64]


def to_seconds(timestamps: npt.NDArray[np.datetime64]) -> FloatArray:
    """Seconds since the Unix epoch as float64."""
    return timestamps.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9


@dataclass(frozen=True, eq=False)
class Frame:
    """Timestamps (``datetime64[ns]``, sorted, unique, naive UTC) and a float64 ``(n, d)`` value matrix.

    Examples
    --------
    >>> f = Frame.from_arrays(["2024-01-01 00:00", "2024-01-01 00:01"], [[1.0], [2.0]], ["cpu"])
    >>> len(f), f.columns, f.values[:, 0].tolist()
    (2, ('cpu',), [1.0, 2.0])
    """

    timestamps: npt.NDArray[np.datetime64]
    values: FloatArray
    columns: tuple[str, ...]
    name: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise DataError(f"values must be 2-D (rows, columns), got shape {self.values.shape}", where=self.name)
        if self.values.shape[0] != self.timestamps.shape[0]:
            raise DataError(
                f"{self.timestamps.shape[0]} timestamps but {self.values.shape[0]} value rows", where=self.name
            )
        if self.values.shape[1] != len(self.columns):
            raise DataError(
                f"{len(self.columns)} column names but {self.values.shape[1]} value columns", where=self.name
            )

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def ndim(self) -> int:
        """Number of value columns."""
        return int(self.values.shape[1])

    def seconds(self) -> FloatArray:
        """Timestamps as float seconds since the epoch."""
        return to_seconds(self.timestamps)

    def column(self, name: str) -> FloatArray:
        try:
            return self.values[:, self.columns.index(name)]
        except ValueError:
            raise DataError(f"no column {name!r}; columns: {', '.join(self.columns)}", where=self.name) from None

    def select(self, columns: Sequence[str]) -> Frame:
        idx = [self.columns.index(c) for c in columns]
        return Frame(self.timestamps, self.values[:, idx], tuple(columns), self.name, self.notes)

    def slice(self, start: int, stop: int | None = None) -> Frame:
        return Frame(self.timestamps[start:stop], self.values[start:stop], self.columns, self.name, self.notes)

    def to_pandas(self) -> pd.DataFrame:
        df = pd.DataFrame(self.values, columns=list(self.columns))
        df.insert(0, "timestamp", pd.to_datetime(self.timestamps))
        return df

    @classmethod
    def from_arrays(
        cls,
        timestamps: Sequence[object] | npt.NDArray[np.generic],
        values: Sequence[Sequence[float]] | Sequence[float] | npt.NDArray[np.generic],
        columns: Sequence[str] | None = None,
        name: str = "",
    ) -> Frame:
        vals = np.asarray(values, dtype=np.float64)
        if vals.ndim == 1:
            vals = vals[:, None]
        cols = tuple(columns) if columns is not None else tuple(f"x{i}" for i in range(vals.shape[1]))
        df = pd.DataFrame(vals, columns=list(cols))
        df.insert(0, "timestamp", pd.to_datetime(np.asarray(timestamps)))
        return cls.from_pandas(df, timestamp="timestamp", name=name)

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        *,
        timestamp: str,
        columns: Sequence[str] | None = None,
        name: str = "",
        row_offset: int = 0,
    ) -> Frame:
        """Validate and convert a DataFrame.

        ``row_offset`` is added to 0-based positions when naming a row in an error (a CSV with a header
        line passes 2, so the first data row is reported as row 2, its line number).
        """
        if len(df) == 0:
            raise DataError("no data rows", where=name or None)
        if timestamp not in df.columns:
            raise DataError(f"no timestamp column {timestamp!r}", where=name or None)
        value_cols = [c for c in (columns or df.columns) if c != timestamp]
        if not value_cols:
            raise DataError("no value columns", where=name or None)
        ts = _parse_timestamps(df[timestamp], name, timestamp, row_offset)
        vals = np.empty((len(df), len(value_cols)), dtype=np.float64)
        for j, col in enumerate(value_cols):
            if col not in df.columns:
                raise DataError(f"no column {col!r}", where=name or None)
            vals[:, j] = _parse_numeric(df[col], name, str(col), row_offset)
        notes: list[str] = []
        order = np.argsort(ts, kind="stable")
        if np.any(order != np.arange(len(ts))):
            notes.append(f"{int(np.sum(order != np.arange(len(ts))))} rows were out of time order: sorted")
            ts, vals = ts[order], vals[order]
        dup = np.zeros(len(ts), dtype=bool)
        dup[:-1] = ts[1:] == ts[:-1]
        if dup.any():
            notes.append(f"{int(dup.sum())} duplicate timestamps: kept the last value of each")
            ts, vals = ts[~dup], vals[~dup]
        return cls(ts, vals, tuple(str(c) for c in value_cols), name, tuple(notes))


def _parse_timestamps(col: pd.Series, name: str, column: str, row_offset: int) -> npt.NDArray[np.datetime64]:
    raw = col
    if pd.api.types.is_numeric_dtype(raw):
        numeric = raw.astype("float64")
        finite = numeric[np.isfinite(numeric)]
        # Unix seconds, milliseconds or nanoseconds, chosen by magnitude.
        unit = "s" if finite.empty or finite.abs().max() < 1e11 else ("ms" if finite.abs().max() < 1e14 else "ns")
        parsed = pd.to_datetime(numeric, unit=unit, errors="coerce", utc=True)  # type: ignore[call-overload]
    else:
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(f"cannot read {raw.iloc[i]!r} as a timestamp", where=name or None,
                        row=i + row_offset, column=column)
    out: npt.NDArray[np.datetime64] = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return out


def _parse_numeric(col: pd.Series, name: str, column: str, row_offset: int) -> FloatArray:
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = pd.to_numeric(col, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy() & col.notna().to_numpy()
                         & ~col.astype(str).str.strip().str.lower().isin(["", "nan", "na", "null", "none"]).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{col.iloc[i]!r} is not a number", where=name or None, row=i + row_offset, column=column)
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)
