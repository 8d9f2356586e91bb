"""CSV and Parquet files read into a :class:`~opsmind.core.Frame`.

:func:`read_frame` is the entry point. The timestamp column is the one the caller names, else the first column
named like a time (``timestamp``, ``time``, ``ts``, ``date``, ``datetime``, ...), else the first column whose
values all read as dates or as Unix epoch numbers (seconds, milliseconds or nanoseconds). Every other column is a
value column unless the caller chooses some.

Every malformed input raises a one-line :class:`~opsmind.core.DataError` naming the file, the row and the
column: in a CSV the row is the line number (the header is line 1); in a Parquet file it is the 1-based data
row. Unsorted rows, duplicate timestamps, NaN values, gaps and constant series are handled as
:meth:`Frame.from_pandas <opsmind.core.Frame.from_pandas>` documents.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from opsmind.core.errors import DataError
from opsmind.core.series import Frame

__all__ = ["TIMESTAMP_NAMES", "read_frame"]

TIMESTAMP_NAMES = (
    "timestamp", "time", "ts", "date", "datetime", "time_stamp", "date_time", "epoch", "unix_time",
    "@timestamp", "_time", "t",
)
_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_DELIMITERS = (",", ";", "\t", "|")
_EPOCH_RANGES = ((1e8, 1e10), (1e11, 1e13), (1e17, 1e19))  # plausible Unix seconds, milliseconds, nanoseconds


def read_frame(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    timestamp: str | None = None,
) -> Frame:
    """Read a CSV or Parquet file into a ``Frame`` named after the file.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv``/``.txt`` file (UTF-8, delimiter read from the header: ``,`` ``;`` tab or ``|``) or a
        ``.parquet`` file (also recognised by its magic bytes).
    columns
        The value columns to keep, in this order; by default every column but the timestamp.
    timestamp
        The timestamp column; by default it is detected.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "cpu.csv"
    >>> _ = p.write_text("time,cpu,mem\\n2024-01-01T00:01:00Z,0.5,10\\n2024-01-01T00:00:00Z,0.25,11\\n")
    >>> f = read_frame(p)
    >>> f.columns, f.values[:, 0].tolist(), f.notes
    (('cpu', 'mem'), [0.25, 0.5], ('2 rows were out of time order: sorted',))
    >>> read_frame(p, columns=["mem"]).values[:, 0].tolist()
    [11.0, 10.0]
    """
    file = Path(path)
    where = str(path)
    if not file.is_file():
        raise DataError("no such file" if not file.exists() else "not a regular file", where=where)
    data = file.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip (e.g. metrics.csv.gz)
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"not a readable gzip file: {exc}", where=where) from None
    if not data.strip():
        raise DataError("the file is empty", where=where)
    if file.suffix.lower() in _PARQUET_SUFFIXES or data[:4] == b"PAR1":
        df, row_of = _read_parquet(file, where), _parquet_row
    else:
        df, lines = _read_csv(data, where)

        def row_of(position: int) -> int:
            return lines[position]

    return _to_frame(df, where, row_of, columns, timestamp)


def _parquet_row(position: int) -> int:
    return position + 1


def _read_parquet(file: Path, where: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {_one_line(str(exc))}", where=where) from None
    df: pd.DataFrame = table.to_pandas()
    df.columns = [str(c) for c in df.columns]
    return df


def _read_csv(data: bytes, where: str) -> tuple[pd.DataFrame, list[int]]:
    """Strings of every cell, and the line number of each data row."""
    text = _decode(data, where)
    delimiter = _delimiter(text.split("\n", 1)[0])
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    previous = 0
    try:
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            cells = [cell.strip() for cell in record]
            if header is None:
                header = _check_header(cells, where, start)
                continue
            if len(cells) != len(header):
                _ragged(cells, header, delimiter, where, start)
            rows.append(cells)
            lines.append(start)
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", where=where, row=reader.line_num) from None
    if header is None:
        raise DataError("the file is empty", where=where)
    if not rows:
        raise DataError("only a header line, no data rows", where=where, row=2)
    return pd.DataFrame(rows, columns=header, dtype=object), lines


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        header = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
        delimiter = _delimiter(header)
        names = next(csv.reader([header], delimiter=delimiter))
        field = data[line_start:exc.start].decode("utf-8", errors="replace").count(delimiter)
        column = names[field].strip() if line > 1 and field < len(names) else None
        raise DataError(
            f"byte {data[exc.start]:#04x} is not UTF-8 (save the file as UTF-8)", where=where, row=line, column=column
        ) from None


def _delimiter(header: str) -> str:
    """The candidate delimiter seen most often in the header outside quotes (a comma on a tie)."""
    unquoted = re.sub(r'"[^"]*"', "", header)
    return max(_DELIMITERS, key=unquoted.count)


def _check_header(cells: list[str], where: str, line: int) -> list[str]:
    seen: set[str] = set()
    for i, name in enumerate(cells):
        if not name:
            raise DataError(f"header field {i + 1} has no name", where=where, row=line)
        if name in seen:
            raise DataError("column name appears twice in the header", where=where, row=line, column=name)
        seen.add(name)
    return cells


def _ragged(cells: list[str], header: list[str], delimiter: str, where: str, line: int) -> None:
    column = header[len(cells)] if len(cells) < len(header) else None
    raise DataError(
        f"{len(cells)} fields where the header has {len(header)} (delimiter {delimiter!r}): "
        "a ragged row or a different delimiter",
        where=where,
        row=line,
        column=column,
    )


def _to_frame(
    df: pd.DataFrame,
    where: str,
    row_of: Callable[[int], int],
    columns: Sequence[str] | None,
    timestamp: str | None,
) -> Frame:
    names = [str(c) for c in df.columns]
    if len(df) == 0:
        raise DataError("no data rows", where=where)
    for name in [*(columns or []), *([timestamp] if timestamp else [])]:
        if name not in names:
            raise DataError(f"no such column; columns: {', '.join(names)}", where=where, column=name)
    ts_col = timestamp or _detect_timestamp(df, where)
    value_cols = [c for c in (columns if columns is not None else names) if c != ts_col]
    if not value_cols:
        raise DataError(f"no value columns besides the timestamp column {ts_col!r}", where=where)
    df = df.copy()
    df[ts_col] = _prepare_timestamps(df[ts_col], where, ts_col, row_of)
    try:
        frame = Frame.from_pandas(df, timestamp=ts_col, columns=value_cols, name=where)
    except DataError as exc:
        row = row_of(exc.row) if exc.row is not None else None
        raise DataError(_bare_message(exc), where=where, row=row, column=exc.column) from None
    return frame


def _bare_message(exc: DataError) -> str:
    """The message of ``exc`` without the location prefix that ``DataError`` adds."""
    prefix = str(DataError("", where=exc.where, row=exc.row, column=exc.column))
    text = str(exc)
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _detect_timestamp(df: pd.DataFrame, where: str) -> str:
    by_name = {str(c).strip().lower(): str(c) for c in df.columns}
    for candidate in TIMESTAMP_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    for col in df.columns:
        if _looks_like_time(df[col]):
            return str(col)
    raise DataError(
        f"no timestamp column: none is named {'/'.join(TIMESTAMP_NAMES[:5])}/... and none reads as dates or "
        "Unix epoch numbers; pass timestamp=",
        where=where,
    )


def _looks_like_time(col: pd.Series) -> bool:
    """All dates or epoch numbers in one range, bar a minority of bad cells that are then reported by row."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return True
    if pd.api.types.is_bool_dtype(col):
        return False
    values = col.dropna()
    values = values[values.astype(str).str.strip() != ""]
    if values.empty:
        return False
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() > 0.5:
        magnitude = numbers.dropna().abs()
        return any(bool(((magnitude >= lo) & (magnitude < hi)).all()) for lo, hi in _EPOCH_RANGES)
    if numbers.notna().any():
        return False
    parsed = pd.to_datetime(values.astype(str), errors="coerce", utc=True, format="mixed")
    return bool(pd.notna(parsed.iloc[0]) and parsed.notna().mean() > 0.5)


def _prepare_timestamps(col: pd.Series, where: str, name: str, row_of: Callable[[int], int]) -> pd.Series:
    """Epoch numbers stored as text become numbers; ISO 8601 text is parsed fast when it all is."""
    if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
        return col
    text = col.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() > 0.5:
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if bad.size:
            i = int(bad[0])
            raise DataError(f"cannot read {text.iloc[i]!r} as a Unix epoch timestamp", where=where,
                            row=row_of(i), column=name)
        return numbers
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return text


def _one_line(text: str) -> str:
    return " ".join(text.split())
