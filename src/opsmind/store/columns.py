"""Column types shared by the models and the migrations, plus input checks and JSON conversion.

* **Times** are stored as ``BIGINT`` milliseconds since the Unix epoch in every table (one unit everywhere,
  exact equality for natural keys, cheap indexes on both databases) and read back as ``float`` Unix seconds,
  the unit :class:`~opsmind.core.alerts.Alert` and :class:`~opsmind.incidents.correlate.Incident` use.
* **JSON** is ``JSON`` on SQLite and ``JSONB`` on PostgreSQL; :func:`to_jsonable` turns numpy values, dataclasses,
  pydantic models, sets and non-finite floats (stored as ``null``) into plain JSON first, and names the field
  of a value it cannot store.
* **Surrogate ids** are ``BIGINT`` on PostgreSQL and ``INTEGER`` on SQLite (where only ``INTEGER PRIMARY KEY``
  is the auto-incrementing row id).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import JSON, BigInteger, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from opsmind.core.errors import DataError

__all__ = [
    "BigId",
    "JSONType",
    "Millis",
    "check_choice",
    "check_float",
    "check_int",
    "check_slug",
    "check_text",
    "check_time",
    "from_ms",
    "ms_time",
    "to_jsonable",
    "to_ms",
]

BigId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_MAX_DEPTH = 64


def to_ms(seconds: float) -> int:
    """Unix seconds to integer milliseconds (rounded to the nearest)."""
    return round(seconds * 1000.0)


def from_ms(ms: int) -> float:
    return ms / 1000.0


class Millis(TypeDecorator[float]):
    """A time: ``float`` Unix seconds in Python, ``BIGINT`` milliseconds in the database."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> int | None:
        return None if value is None else to_ms(float(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> float | None:
        return None if value is None else from_ms(int(value))


# -- input checks: wrong types and values become DataError naming the field --------------------------------------

def check_text(value: object, field: str, *, max_len: int = 255, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {type(value).__name__} {value!r}", column=field)
    if not value and not allow_empty:
        raise DataError("must not be empty", column=field)
    if len(value) > max_len:
        raise DataError(f"is {len(value)} characters long; at most {max_len} allowed", column=field)
    return value


def check_slug(value: object, field: str) -> str:
    """A lower-case identifier: letters, digits, ``_ . -``, starting with a letter or digit, up to 64 characters."""
    text = check_text(value, field, max_len=64)
    if not _SLUG.match(text):
        raise DataError(f"{text!r} is not a valid identifier (lower-case letters, digits, '_', '.', '-', "
                        f"starting with a letter or digit, at most 64 characters)", column=field)
    return text


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise DataError(f"must be one of {', '.join(choices)}; got {value!r}", column=field)
    return value


def check_int(value: object, field: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DataError(f"must be an integer, got {type(value).__name__} {value!r}", column=field)
    out = int(value)
    if minimum is not None and out < minimum:
        raise DataError(f"must be >= {minimum}, got {out}", column=field)
    return out


def check_time(value: object, field: str) -> float:
    """Unix seconds (int or float, finite); ``datetime`` (aware, or naive meaning UTC) and ``datetime64`` too."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.timestamp()
    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"must be a time in Unix seconds, got {type(value).__name__} {value!r}", column=field)
    out = float(value)
    if not math.isfinite(out):
        raise DataError(f"must be a finite time in Unix seconds, got {out!r}", column=field)
    return out


def ms_time(value: object, field: str) -> float:
    """:func:`check_time` rounded to the millisecond, as stored."""
    return from_ms(to_ms(check_time(value, field)))


def check_float(value: object, field: str, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"must be a number, got {type(value).__name__} {value!r}", column=field)
    return float(value)


# -- JSON ---------------------------------------------------------------------------------------------------------

def to_jsonable(value: object, field: str = "value", _depth: int = 0) -> Any:
    """``value`` as plain JSON (dict/list/str/int/float/bool/None); non-finite floats become ``None``.

    >>> to_jsonable({"p": np.float64(0.5), "xs": np.array([1.0, np.nan]), "tags": {"b", "a"}})
    {'p': 0.5, 'xs': [1.0, None], 'tags': ['a', 'b']}
    """
    if _depth > _MAX_DEPTH:
        raise DataError(f"nested deeper than {_MAX_DEPTH} levels (a cycle?)", column=field)
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float, np.str_ a str
        if isinstance(value, np.datetime64):
            return str(np.datetime_as_string(value.astype("datetime64[ms]"), unit="ms")) + "Z"
        return to_jsonable(value.item(), field, _depth + 1)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return [to_jsonable(v, field, _depth + 1) for v in value.tolist()]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, field, _depth + 1)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"), field, _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), f"{field}.{f.name}", _depth + 1)
                for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool | np.integer):
                raise DataError(f"key {k!r} of type {type(k).__name__} cannot be a JSON key", column=field)
            out[str(k)] = to_jsonable(v, f"{field}.{k}", _depth + 1)
        return out
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v, field, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, list | tuple):
        return [to_jsonable(v, f"{field}[{i}]", _depth + 1) for i, v in enumerate(value)]
    raise DataError(f"a value of type {type(value).__name__} cannot be stored as JSON", column=field)
