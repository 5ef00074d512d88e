"""Reading a dataset's CSV file, plain or gzipped, as a stream of rows by column name."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from db.imports.records import RowError

_GZIP_MAGIC = b"\x1f\x8b"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # how surrogateescape keeps a stray byte


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not CSV, a required column missing)."""


@dataclass
class CsvRow:
    line: int                 # the row's first line in the file (the header is line 1)
    values: dict[str, str]    # by lower-cased column name
    width_error: str | None   # set when the row has more or fewer fields than the header


class CsvSource:
    """The rows of a CSV file (gzipped or not, by its first bytes), with how far the
    reading has got in the file's bytes for a progress bar. Columns are found by name,
    case-insensitively, never by position."""

    def __init__(self, path: Path):
        self.path = path
        self.size = path.stat().st_size
        self._raw: BinaryIO = path.open("rb")
        stream: BinaryIO = gzip.GzipFile(fileobj=self._raw) if self._raw.read(2) == _GZIP_MAGIC else self._raw
        self._raw.seek(0)
        # A byte that is not UTF-8 becomes a lone surrogate (reversible, never an
        # exception in the middle of a chunk): the row holding it is rejected by line.
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self._reader = csv.reader(self._text)
        try:
            header = next(self._reader)
        except StopIteration:
            raise ImportFileError(f"{path}: empty file, no header") from None
        except (csv.Error, OSError, EOFError, zlib.error) as error:
            raise ImportFileError(f"{path}: not a readable CSV file ({error})") from None
        self.columns = [name.strip().lower() for name in header]
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1 and c})
        if repeated:
            raise ImportFileError(f"{path}: column {repeated[0]!r} appears twice in the header")

    def require(self, needed: tuple[str, ...], dataset: str) -> None:
        missing = [c for c in needed if c not in self.columns]
        if missing:
            raise ImportFileError(f"{self.path}: not a {dataset} file: no column {', '.join(missing)} "
                                  f"(found: {', '.join(self.columns[:12])}{'...' if len(self.columns) > 12 else ''})")

    @property
    def position(self) -> int:
        """Bytes of the file read so far."""
        return self._raw.tell()

    def rows(self) -> Iterator[CsvRow]:
        """The rows, each with its first line. A file damaged part-way (a truncated or
        corrupt gzip, quoting the reader cannot get past) ends the rows with one
        `CsvRow` whose `width_error` says so: what was read before still imports."""
        width = len(self.columns)
        previous_end = self._reader.line_num
        while True:
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except (csv.Error, OSError, EOFError, zlib.error) as error:
                yield CsvRow(previous_end + 1, {}, f"the file is damaged from here on, nothing after it was read "
                                                   f"({type(error).__name__}: {error or 'unexpected end'})")
                return
            line, previous_end = previous_end + 1, self._reader.line_num
            if not any(field.strip() for field in fields):
                continue  # blank line
            error = None if len(fields) == width else f"has {len(fields)} fields, the header has {width}"
            if error is None and any(_NOT_UTF8.search(field) for field in fields):
                error = "holds bytes that are not UTF-8"
            yield CsvRow(line, dict(zip(self.columns, fields)), error)

    def close(self) -> None:
        self._text.close()
        self._raw.close()


def text_field(row: dict[str, str], name: str, required: bool = False) -> str | None:
    value = (row.get(name) or "").strip()
    if not value:
        if required:
            raise RowError(f"{name} is empty")
        return None
    return value


def int_field(row: dict[str, str], name: str, required: bool = False, minimum: int | None = 0) -> int | None:
    value = text_field(row, name, required)
    if value is None:
        return None
    try:
        number = int(float(value)) if "." in value and float(value).is_integer() else int(value)
    except ValueError:
        raise RowError(f"{name} {value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise RowError(f"{name} {number} is below {minimum}")
    if number > 2_147_483_647:
        raise RowError(f"{name} {number} is too large")
    return number


def coordinate_field(row: dict[str, str], name: str, limit: float) -> float:
    value = text_field(row, name)
    if value is None:
        raise RowError(f"{name} is missing")
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"{name} {value!r} is not a number") from None
    if not -limit <= number <= limit:  # (NaN fails both)
        raise RowError(f"{name} {number} is outside -{limit:g}..{limit:g}")
    return number
