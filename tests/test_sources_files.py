"""Reading CSV and Parquet files into frames: detection, documented handling, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsmind.core import DataError
from opsmind.sources.files import read_frame

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_frame(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)
    return info.value


# ---- reading -------------------------------------------------------------------------------------------------


def test_csv_with_named_timestamp_and_many_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "host_cpu,Timestamp,mem\n0.5,2024-01-01T00:00:00Z,100\n0.75,2024-01-01T00:01:00Z,101\n")
    frame = read_frame(path)
    assert frame.columns == ("host_cpu", "mem") and frame.name == str(path)
    assert frame.seconds().tolist() == [T0, T0 + 60]
    assert frame.values.tolist() == [[0.5, 100.0], [0.75, 101.0]]


def test_chosen_columns_and_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c,when\n1,2,3,2024-01-01\n4,5,6,2024-01-02\n")
    frame = read_frame(path, columns=["c", "a"], timestamp="when")
    assert frame.columns == ("c", "a") and frame.values.tolist() == [[3.0, 1.0], [6.0, 4.0]]
    assert frame.seconds().tolist() == [T0, T0 + 86400]


@pytest.mark.parametrize(("scale", "unit"), [(1, "s"), (1000, "ms"), (10**9, "ns")])
def test_epoch_column_detected_without_a_time_name(tmp_path: Path, scale: int, unit: str) -> None:
    rows = "".join(f"{(T0 + 60 * i) * scale},{i}\n" for i in range(3))
    frame = read_frame(write(tmp_path, "when_" + unit + ",requests\n" + rows))
    assert frame.columns == ("requests",) and frame.seconds().tolist() == [T0, T0 + 60, T0 + 120]


def test_date_column_detected_when_it_is_not_first(tmp_path: Path) -> None:
    frame = read_frame(write(tmp_path, "load,observed\n1.5,2024-01-01 00:00\n2.5,2024-01-01 00:05\n"))
    assert frame.columns == ("load",) and frame.seconds().tolist() == [T0, T0 + 300]


def test_semicolon_tab_bom_quotes_blank_lines_and_spaces(tmp_path: Path) -> None:
    semicolon = write(tmp_path, "\ufefftime;value\n2024-01-01T00:00:00Z; 1.5\n\n2024-01-01T00:00:10Z;2\n", "s.csv")
    assert read_frame(semicolon).values[:, 0].tolist() == [1.5, 2.0]
    tab = write(tmp_path, 'ts\t"cpu, total"\n1704067200\t3\n', "t.tsv")
    assert read_frame(tab).columns == ("cpu, total",)


def test_documented_handling_unsorted_duplicates_nan_gaps_constant(tmp_path: Path) -> None:
    text = "time,v,flat\n" + "".join(f"{T0 + s},{v},7\n" for s, v in
                                     [(60, "2"), (0, "1"), (60, "3"), (120, ""), (3600, "NaN")])
    frame = read_frame(write(tmp_path, text))
    assert frame.seconds().tolist() == [T0, T0 + 60, T0 + 120, T0 + 3600]  # gap kept
    v = frame.column("v")
    assert v[:2].tolist() == [1.0, 3.0] and np.isnan(v[2:]).all()  # last duplicate kept, NaN kept
    assert frame.column("flat").tolist() == [7.0] * 4
    assert any("out of time order" in n for n in frame.notes)
    assert any("1 duplicate timestamps" in n for n in frame.notes)


def test_parquet_with_datetime_and_int_columns(tmp_path: Path) -> None:
    df = pd.DataFrame({"ts": pd.to_datetime([T0 + 60, T0], unit="s"), "rps": [2, 1], "err": [0.5, None]})
    path = tmp_path / "m.parquet"
    df.to_parquet(path)
    frame = read_frame(path)
    assert frame.columns == ("rps", "err") and frame.seconds().tolist() == [T0, T0 + 60]
    assert frame.column("rps").tolist() == [1.0, 2.0] and np.isnan(frame.column("err")[0])


def test_parquet_recognised_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "export.bin"
    pd.DataFrame({"time": pd.to_datetime([T0], unit="s"), "x": [1.0]}).to_parquet(path)
    assert read_frame(path).values.tolist() == [[1.0]]


# ---- malformed input: one line naming file, row and column ---------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in str(error(tmp_path / "nope.csv"))


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert "empty" in str(error(write(tmp_path, text)))


def test_header_only(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,value\n"))
    assert exc.row == 2 and "no data rows" in str(exc)


def test_no_parsable_timestamp_column(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "host,value\nweb-1,1\nweb-2,2\n"))
    assert "no timestamp column" in str(exc) and "timestamp=" in str(exc)


def test_text_in_a_value_column(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu,mem\n2024-01-01,1,2\n\n2024-01-02,3,lots\n"))
    assert (exc.row, exc.column) == (4, "mem") and "'lots' is not a number" in str(exc)
    assert str(exc).startswith(f"{tmp_path / 'data.csv'}, row 4, column 'mem': ")


def test_unparsable_timestamp(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu\n2024-01-01,1\n2024-01-02,2\nyesterday,3\n"))
    assert (exc.row, exc.column) == (4, "time") and "'yesterday'" in str(exc)


def test_unparsable_epoch_timestamp(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "ts,cpu\n1704067200,1\n1704067260,2\n17040x7320,3\n"))
    assert (exc.row, exc.column) == (4, "ts") and "epoch" in str(exc)


def test_empty_timestamp_cell(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu\n2024-01-01,1\n,2\n"))
    assert (exc.row, exc.column) == (3, "time")


def test_wrong_delimiter_in_a_row(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu,mem\n2024-01-01,1,2\n2024-01-02;3;4\n"))
    assert (exc.row, exc.column) == (3, "cpu") and "delimiter ','" in str(exc)


def test_ragged_row_with_extra_fields(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu\n2024-01-01,1\n2024-01-02,3,4\n"))
    assert exc.row == 3 and "3 fields where the header has 2" in str(exc)


def test_non_utf8_bytes(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu,note\n2024-01-01,1,ok\n2024-01-02,2,caf\xe9\n".encode("latin-1")))
    assert (exc.row, exc.column) == (3, "note") and "0xe9" in str(exc) and "UTF-8" in str(exc)


def test_non_utf8_in_header(tmp_path: Path) -> None:
    exc = error(write(tmp_path, b"time,temp\xb0\n2024-01-01,1\n"))
    assert exc.row == 1 and exc.column is None


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pd.DataFrame({"time": pd.to_datetime([T0], unit="s"), "x": [1.0]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])
    assert "not a readable Parquet file" in str(error(path))


def test_text_in_a_parquet_value_column_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pd.DataFrame({"time": pd.to_datetime([T0, T0 + 1, T0 + 2], unit="s"), "x": ["1", "2", "three"]}).to_parquet(path)
    exc = error(path)
    assert (exc.row, exc.column) == (3, "x")


def test_unknown_requested_column(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu\n2024-01-01,1\n"), columns=["mem"])
    assert exc.column == "mem" and "columns: time, cpu" in str(exc)


def test_duplicate_header_name(tmp_path: Path) -> None:
    exc = error(write(tmp_path, "time,cpu,cpu\n2024-01-01,1,2\n"))
    assert (exc.row, exc.column) == (1, "cpu")


def test_unterminated_quote(tmp_path: Path) -> None:
    exc = error(write(tmp_path, 'time,cpu\n2024-01-01,"1\n'))
    assert exc.row is not None and "CSV" in str(exc)


def test_gzipped_csv_is_read_and_a_broken_one_is_a_located_error(tmp_path: Path) -> None:
    import gzip

    from opsmind.core import DataError
    from opsmind.sources.files import read_frame

    good = tmp_path / "m.csv.gz"
    good.write_bytes(gzip.compress(b"timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,2\n"))
    assert read_frame(good).values[:, 0].tolist() == [1.0, 2.0]
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"timestamp,value\n")[:8])
    with pytest.raises(DataError, match=r"bad\.csv\.gz: not a readable gzip file"):
        read_frame(bad)
