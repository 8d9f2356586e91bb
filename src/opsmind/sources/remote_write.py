"""Prometheus remote_write 1.0: decode what a Prometheus server pushes, encode it (for tests and the benchmark).

A request body is a ``WriteRequest`` protobuf message (``remote_write.proto``, written from the remote_write 1.0
specification), compressed with snappy's *block* format (not the framed one). Each ``TimeSeries`` carries its
labels (``__name__`` among them) and samples as ``(value, timestamp in milliseconds)``.

Decoding turns a body into :class:`~opsmind.store.SeriesSamples` for :meth:`opsmind.store.SampleRepository.ingest`:
the name is ``__name__``, the service is left to the store (the first of the labels ``service``, ``app``, ``job``,
...), times become Unix seconds. Prometheus' staleness markers (a NaN with a special bit pattern, written when a
series disappears) say "no value from here on", not a measurement: they are dropped. A body that is not snappy,
not a ``WriteRequest``, or holds a series without a name raises :class:`~opsmind.core.DataError` saying which.

>>> body = encode([({"__name__": "up", "job": "api"}, [(1_700_000_000_000, 1.0)])])
>>> [(s.name, dict(s.labels), list(s.ts), list(s.values)) for s in decode(body).series]
[('up', {'job': 'api'}, [1700000000.0], [1.0])]
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import snappy  # type: ignore[import-untyped]

from opsmind.core.errors import DataError
from opsmind.sources import remote_write_pb2 as pb
from opsmind.store.series import SeriesSamples

__all__ = ["STALE_NAN_BITS", "Decoded", "decode", "encode", "write_request"]

#: The bit pattern of the NaN Prometheus writes as a staleness marker (``value.StaleNaN``).
STALE_NAN_BITS = 0x7FF0000000000002
_STALE_BYTES = struct.pack("<Q", STALE_NAN_BITS)


@dataclass(frozen=True)
class Decoded:
    """A decoded request: the series with their samples, and how many staleness markers were dropped."""

    series: list[SeriesSamples]
    samples: int
    stale_markers: int


def _is_stale(value: float) -> bool:
    return value != value and struct.pack("<d", value) == _STALE_BYTES


def _uncompressed_length(body: bytes) -> int:
    """The uncompressed size a snappy block states first (a little-endian base-128 varint of at most 32 bits)."""
    size = 0
    for i, byte in enumerate(body[:5]):
        size |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return size
    raise DataError("remote_write: body is not snappy block-compressed (no valid length header)")


def decode(body: bytes, *, max_decompressed_bytes: int | None = None) -> Decoded:
    """The series of a remote_write body (snappy block + ``WriteRequest``); ``DataError`` says what is wrong.

    ``max_decompressed_bytes`` bounds the uncompressed size (snappy states it in its header), so a small body
    cannot unpack into gigabytes."""
    if not body:
        raise DataError("remote_write: empty body (expected a snappy-compressed WriteRequest)")
    size = _uncompressed_length(body)
    if max_decompressed_bytes is not None and size > max_decompressed_bytes:
        raise DataError(f"remote_write: body unpacks to {size} bytes; at most {max_decompressed_bytes} accepted")
    try:
        raw = snappy.uncompress(body)
    except Exception as exc:  # UncompressError, and whatever else the library raises for garbage
        why = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
        raise DataError(f"remote_write: body is not snappy block-compressed ({why})") from None
    if len(raw) != size:
        raise DataError(f"remote_write: snappy header says {size} bytes but the body unpacks to {len(raw)}")
    request = pb.WriteRequest()
    try:
        request.ParseFromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError, and others for some malformed input
        raise DataError(f"remote_write: body is not a protobuf WriteRequest ({exc})") from None
    out: list[SeriesSamples] = []
    total = stale = 0
    for i, ts in enumerate(request.timeseries):
        labels = {lab.name: lab.value for lab in ts.labels}
        name = labels.pop("__name__", "")
        if not name:
            raise DataError(f"remote_write: timeseries[{i}] has no __name__ label")
        stamps: list[float] = []
        values: list[float] = []
        for sample in ts.samples:
            v = sample.value
            if v != v and _is_stale(v):
                stale += 1
                continue
            stamps.append(sample.timestamp / 1000.0)
            values.append(v)
        if stamps:
            out.append(SeriesSamples(name=name, labels=labels, ts=stamps, values=values))
            total += len(stamps)
    return Decoded(series=out, samples=total, stale_markers=stale)


def write_request(series: Iterable[tuple[Mapping[str, str], Sequence[tuple[int, float]]]]) -> pb.WriteRequest:
    """A ``WriteRequest`` of ``(labels with __name__, [(timestamp ms, value), ...])`` items, labels sorted."""
    request = pb.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for stamp, value in samples:
            ts.samples.add(value=float(value), timestamp=int(stamp))
    return request


def encode(series: Iterable[tuple[Mapping[str, str], Sequence[tuple[int, float]]]]) -> bytes:
    """A remote_write body, as Prometheus sends it (see :func:`write_request`)."""
    body: bytes = snappy.compress(write_request(series).SerializeToString())
    return body
