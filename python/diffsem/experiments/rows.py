"""The one row writer and reader of the experiments: CSV files with a fixed header, appended
row by row (flushed and fsynced, so a kill loses at most the row being written), resumable
(`key` / `done_keys`: a rerun skips the points already present), and upgraded in place when an
older file has other columns.

`diffsem eval` (ROW_KEYS of diffsem.experiments.evaluate) and `diffsem sweep` (FIELDS of
diffsem.experiments.sweep) write through it; scripts/results_table.py, scripts/make_results_docs.py
and `diffsem calibrate` read what it writes.
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

log = logging.getLogger("diffsem.experiments.rows")

FLOAT_KEYS = ("cfo", "snr_db", "temperature", "fraction", "sir_db")
INT_KEYS = ("steps", "k", "n", "seed")
# coordinates added after rows were written without them: such a row was computed at this value
MISSING = {"impairment": "none", "fraction": 0.0}


def canonical(field: str, value) -> str:
    """Canonical text of a grid coordinate, so that keys read back from a CSV compare equal."""
    if (value is None or value == "") and field in MISSING:
        value = MISSING[field]
    if value is None or value == "":
        return ""
    if field in FLOAT_KEYS:
        return repr(float(value))
    if field in INT_KEYS:
        return str(int(float(value)))
    return str(value)


def key(row: dict, fields) -> tuple:
    """The row's (or grid point's) key over `fields`."""
    return tuple(canonical(f, row.get(f)) for f in fields)


def read_rows(path, required=()) -> list[dict]:
    """Rows of a CSV; rows missing a `required` value (cut short by a kill while writing) are
    dropped with a warning."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    rows, bad = [], 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if any(row.get(k) in (None, "") for k in required):
                bad += 1
                continue
            rows.append(row)
    if bad:
        log.warning("%s: %d incomplete row(s) ignored; those points will be recomputed", path, bad)
    return rows


def done_keys(path, fields, required=()) -> set:
    """Keys of the rows already in `path`: the points a resumed run skips."""
    return {key(r, fields) for r in read_rows(path, required)}


def _upgrade_header(path: Path, fields, required) -> None:
    """Rewrite a CSV written with other columns under `fields`, atomically. Columns it lacks
    stay empty: such rows keep their values but match no point that needs them."""
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    if header == list(fields):
        return
    rows = read_rows(path, required)
    rewrite_rows(path, fields, rows)
    log.warning("%s: columns upgraded to %s (%d rows kept)", path, ", ".join(fields), len(rows))


def rewrite_rows(path, fields, rows) -> None:
    """Replace the CSV at `path` with `rows` under the `fields` header, atomically (a kill leaves
    the old file or the new one)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) or "" for k in fields})
    tmp.replace(path)


class RowWriter:
    """Appends rows under the `fields` header; flushed and fsynced per row. None is written as ''."""

    def __init__(self, path, fields, required=()):
        self.path = Path(path)
        self.fields = tuple(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _upgrade_header(self.path, self.fields, required)
            with open(self.path, "rb") as f:  # a line cut by a kill must not swallow the next row
                f.seek(-1, os.SEEK_END)
                ends_clean = f.read(1) == b"\n"
            if not ends_clean:
                with open(self.path, "a") as f:
                    f.write("\n")
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields, extrasaction="ignore")
        if new:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.fields})
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
