"""Results store: one tidy, append-only table of sweep results, crash-safe and resumable.

Owns the results schema (`COLUMNS`, `SCHEMA`: one place), `ResultsStore` (the single writer of a
results directory) and the lock-free readers `read_results` / `read_failures`. No JAX: a report can be
made on a laptop from a pod's results directory.

Layout of a results directory::

    <results_dir>/.lock                 flock'ed by the one live ResultsStore (holds its pid)
    <results_dir>/parts/<sha1>.parquet  one file per appended unit (sha1 of the caller's unit key);
                                        the unit key is in the file's schema metadata
    <results_dir>/results.parquet       optional: parts merged by `compact()`; metadata lists its units
    <results_dir>/failures.jsonl        failed checkpoints / stages (rewritten whole, then renamed)

Guarantees: every file appears whole or not at all (temp file + fsync + `os.replace` + directory
fsync), a unit key is written at most once (re-appending a done key is a no-op returning False), so a
process killed at any moment and rerun gives the same table as an uninterrupted run, with no lost and
no duplicated rows. `compact()` is idempotent and kill-safe too (a part whose unit is already in
`results.parquet` is ignored and removed later).

Limits: the lock is `fcntl.flock` (per host; on NFS it depends on the server), so only one process
(process 0 in a multi-host sweep) may write. Readers take no lock; a reader racing with `compact()`
retries its listing.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# --- schema: the one place the table's columns and types are defined -------------------------------
ROW_COLUMNS = ("task", "train_lang", "eval_lang", "layer", "seed", "metric", "value", "n")
"""Keys every task's result row carries (interface contract)."""
SWEEP_COLUMNS = ("run_id", "checkpoint", "step")
"""Keys the sweep adds to every row."""
PROVENANCE_COLUMNS = ("config_hash", "data_hash", "package_version", "checkpoint_path", "checkpoint_hash")
"""Optional provenance keys (default "")."""
COLUMNS = ("run_id", "checkpoint", "step", "task", "train_lang", "eval_lang", "layer", "seed",
           "metric", "value", "n", "extra") + PROVENANCE_COLUMNS
"""All columns of the table, in order. `extra` is a JSON object string ("{}" when empty)."""
REQUIRED_COLUMNS = SWEEP_COLUMNS + ROW_COLUMNS
_INT = ("step", "layer", "seed", "n")
SCHEMA = pa.schema([(c, pa.int64() if c in _INT else pa.float64() if c == "value" else pa.string())
                    for c in COLUMNS])
"""Arrow schema of every stored file (int64 step/layer/seed/n, float64 value, strings otherwise)."""
SORT_KEYS = ("task", "metric", "train_lang", "eval_lang", "layer", "step", "seed", "checkpoint", "run_id",
             "extra")
"""Row order of `table()`: stable keys, so two runs that wrote the same rows give equal tables."""

PARTS_DIR = "parts"
COMPACT_FILE = "results.parquet"
FAILURES_FILE = "failures.jsonl"
LOCK_FILE = ".lock"
_META_UNIT = b"xlmr_dynamics.unit_key"
_META_UNITS = b"xlmr_dynamics.unit_keys"


class ResultsError(ValueError):
    """Bad rows or a malformed results directory (names the unit, row and key, or the file)."""


class ResultsLockedError(RuntimeError):
    """Another live ResultsStore holds the results directory."""


def unit_file_name(unit_key: str) -> str:
    """File name of a unit's part: `<sha1(unit_key)>.parquet`."""
    return hashlib.sha1(unit_key.encode("utf-8")).hexdigest() + ".parquet"


# --- atomic file writing ------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file in the same dir, fsync, rename, fsync the dir."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _atomic_write_table(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


# --- row validation -----------------------------------------------------------------------------------
def _norm_row(row: Mapping[str, Any], where: str) -> dict:
    if not isinstance(row, Mapping):
        raise ResultsError(f"{where}: a row must be a dict, got {type(row).__name__}")
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ResultsError(f"{where}: unknown keys {sorted(unknown)} (allowed: {list(COLUMNS)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise ResultsError(f"{where}: missing keys {missing}")
    out: dict[str, Any] = {}
    for c in COLUMNS:
        v = row.get(c, "" if c != "extra" else None)
        if c in _INT:
            if isinstance(v, bool) or not isinstance(v, int) and not (hasattr(v, "dtype") and v.dtype.kind in "iu"):
                raise ResultsError(f"{where}: key {c!r} must be an int, got {v!r}")
            v = int(v)
        elif c == "value":
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ResultsError(f"{where}: key 'value' must be a number, got {v!r}") from None
        elif c == "extra":
            if v is None or v == "":
                v = "{}"
            elif isinstance(v, Mapping):
                try:
                    v = json.dumps(v, sort_keys=True, default=_json_default)
                except (TypeError, ValueError) as e:
                    raise ResultsError(f"{where}: 'extra' is not JSON-serialisable: {e}") from None
            elif isinstance(v, str):
                try:
                    if not isinstance(json.loads(v), dict):
                        raise ValueError("not a JSON object")
                except ValueError as e:
                    raise ResultsError(f"{where}: 'extra' string is not a JSON object: {e}") from None
            else:
                raise ResultsError(f"{where}: 'extra' must be a dict or JSON string, got {type(v).__name__}")
        else:
            if not isinstance(v, str):
                raise ResultsError(f"{where}: key {c!r} must be a string, got {v!r}")
        out[c] = v
    return out


def _json_default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def rows_to_arrow(rows: Iterable[Mapping[str, Any]], *, unit_key: str = "") -> pa.Table:
    """Validate rows and build an Arrow table with `SCHEMA` (raises ResultsError naming the bad key)."""
    norm = [_norm_row(r, f"unit {unit_key!r} row {i}") for i, r in enumerate(rows)]
    return pa.Table.from_pydict({c: [r[c] for r in norm] for c in COLUMNS}, schema=SCHEMA)


# --- reading (no lock) ----------------------------------------------------------------------------------
def _read_parquet(path: Path, *, schema_only: bool = False):
    # One open file: a concurrent os.replace of `path` cannot mix the old file's footer with the new
    # file's pages (pyarrow may otherwise open a path more than once).
    with open(path, "rb") as fh:
        return pq.read_schema(fh) if schema_only else pq.read_table(fh)


def _conform(t: pa.Table, path: Path) -> pa.Table:
    """`t` in `SCHEMA` (metadata dropped), or a ResultsError naming the file and its columns."""
    try:
        return t.replace_schema_metadata(None).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
        raise ResultsError(f"{path}: its columns {t.schema.names} / types do not match the results "
                           f"schema {SCHEMA.names} ({e})") from None


def _read_compact(results_dir: Path, *, keys_only: bool = False) -> tuple[pa.Table | None, set[str]]:
    path = results_dir / COMPACT_FILE
    if not path.exists():
        return None, set()
    try:
        if keys_only:
            t, meta = None, _read_parquet(path, schema_only=True).metadata or {}
        else:
            t = _read_parquet(path)
            meta = t.schema.metadata or {}
    except FileNotFoundError:
        return None, set()
    except Exception as e:  # noqa: BLE001 - report which file is broken
        raise ResultsError(f"{path}: cannot read ({e})") from e
    if _META_UNITS not in meta:
        raise ResultsError(f"{path}: no unit list in its metadata (not written by ResultsStore)")
    return (None if t is None else _conform(t, path)), set(json.loads(meta[_META_UNITS]))


def _part_paths(results_dir: Path) -> list[Path]:
    parts = results_dir / PARTS_DIR
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))


def _read_part(path: Path, *, keys_only: bool = False) -> tuple[str, pa.Table | None]:
    try:
        if keys_only:
            meta, t = _read_parquet(path, schema_only=True).metadata or {}, None
        else:
            t = _read_parquet(path)
            meta = t.schema.metadata or {}
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ResultsError(f"{path}: cannot read ({e})") from e
    if _META_UNIT not in meta:
        raise ResultsError(f"{path}: no unit key in its metadata (not written by ResultsStore)")
    return meta[_META_UNIT].decode("utf-8"), (None if t is None else _conform(t, path))


def _collect(results_dir: Path, *, keys_only: bool = False) -> tuple[list[pa.Table], set[str]]:
    """All stored tables and unit keys; retried if `compact()` removes a part while we list."""
    for _ in range(5):
        # List parts before reading results.parquet: a compaction in between then shows up as a
        # missing part (retry) instead of silently losing the rows it moved.
        paths = _part_paths(results_dir)
        compact, keys = _read_compact(results_dir, keys_only=keys_only)
        tables = [compact] if compact is not None else []
        try:
            # pyarrow releases the GIL while reading, so threads help with thousands of small parts
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                parts = list(pool.map(lambda p: _read_part(p, keys_only=keys_only), paths))
        except FileNotFoundError:
            continue
        for key, t in parts:  # in file-name order: deterministic
            if key in keys:  # already merged into results.parquet (compact killed before cleanup)
                continue
            keys.add(key)
            if t is not None:
                tables.append(t)
        return tables, keys
    raise ResultsError(f"{results_dir}: parts kept disappearing while reading (is compact() running?)")


def _to_frame(tables: list[pa.Table]) -> pd.DataFrame:
    if tables:
        t = pa.concat_tables(tables)  # each already in SCHEMA (`_conform`)
    else:
        t = SCHEMA.empty_table()
    df = t.to_pandas()
    if len(df):
        df = df.sort_values(list(SORT_KEYS), kind="mergesort").reset_index(drop=True)
    return df


def read_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """The whole results table of a directory (no lock needed), rows in `SORT_KEYS` order.

    Returns:
        DataFrame with columns `COLUMNS` (int64 step/layer/seed/n, float64 value, str otherwise).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsError(f"results dir {results_dir} does not exist")
    tables, _ = _collect(results_dir)
    return _to_frame(tables)


def read_failures(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Recorded failures: columns `time, checkpoint, step, stage, message, unit_key` (may be empty)."""
    path = Path(results_dir) / FAILURES_FILE
    cols = ["time", "checkpoint", "step", "stage", "message", "unit_key"]
    if not path.exists():
        return pd.DataFrame(columns=cols)
    recs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            recs.append(json.loads(line))
        except ValueError as e:
            raise ResultsError(f"{path}:{i}: not JSON ({e})") from None
    return pd.DataFrame(recs, columns=cols)


# --- the writer -----------------------------------------------------------------------------------------
class ResultsStore:
    """The single writer of a results directory; use as a context manager.

    Example::

        with ResultsStore("results/x") as store:
            if not store.is_done(key):
                store.append(key, rows)

    Opening takes a non-blocking exclusive `flock` on `<dir>/.lock`; a second store on the same
    directory (same or another process) raises `ResultsLockedError`. The kernel drops the lock when
    the holder dies, even by SIGKILL, so a rerun never has to clean up a stale lock.

    Args:
        results_dir: directory (created if missing).
        compact_every: after this many un-merged parts, `append` calls `compact()` (reading thousands
            of small parquet files costs ~1 ms each); 0 disables it.
    """

    def __init__(self, results_dir: str | os.PathLike, *, compact_every: int = 256):
        self.results_dir = Path(results_dir)
        self.compact_every = int(compact_every)
        self._lock_fd: int | None = None
        self._done: set[str] = set()
        self._n_parts = 0

    # context management / locking
    def open(self) -> "ResultsStore":
        """Create the directory if needed, take the lock, clean stale temp files, load done units."""
        if self._lock_fd is not None:
            return self
        (self.results_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)
        lock_path = self.results_dir / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise ResultsLockedError(
                f"results dir {self.results_dir} is in use by another ResultsStore (holder pid {holder}); "
                f"wait for it to finish or stop that process (lock file {lock_path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        # Any temp file now is a leftover of a killed writer (we hold the lock).
        for d in (self.results_dir, self.results_dir / PARTS_DIR):
            for p in d.glob(".tmp-*"):
                p.unlink(missing_ok=True)
        _, self._done = _collect(self.results_dir, keys_only=True)
        self._n_parts = len(_part_paths(self.results_dir))
        return self

    def close(self) -> None:
        """Release the lock (also released automatically when the process exits)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ResultsStore":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"ResultsStore({self.results_dir}) is not open; use `with ResultsStore(...)`")

    # units
    def is_done(self, unit_key: str) -> bool:
        """Whether rows for `unit_key` are stored."""
        self._check_open()
        return unit_key in self._done

    def done_units(self) -> set[str]:
        """Keys of every stored unit (a copy)."""
        self._check_open()
        return set(self._done)

    def append(self, unit_key: str, rows: list[dict]) -> bool:
        """Store all rows of one unit atomically (they appear all together or not at all).

        Args:
            unit_key: any string naming the unit (the caller's choice, e.g. "step=5000|pos|en|en,de").
            rows: dicts with `REQUIRED_COLUMNS`, optionally `extra` (dict or JSON object string) and
                `PROVENANCE_COLUMNS`; no other keys. An empty list marks the unit done with no rows.

        Returns:
            True if written; False if `unit_key` was already done (nothing is written: a rerun after
            a kill never duplicates rows).

        Raises:
            ResultsError: a row is malformed (names the unit, row index and key).
        """
        self._check_open()
        if not isinstance(unit_key, str) or not unit_key:
            raise ResultsError(f"unit key must be a non-empty string, got {unit_key!r}")
        if unit_key in self._done:
            return False
        table = rows_to_arrow(rows, unit_key=unit_key)
        table = table.replace_schema_metadata({_META_UNIT: unit_key.encode("utf-8")})
        _atomic_write_table(self.results_dir / PARTS_DIR / unit_file_name(unit_key), table)
        self._done.add(unit_key)
        self._n_parts += 1
        if self.compact_every and self._n_parts >= self.compact_every:
            self.compact()
        return True

    # reading / exporting
    def table(self) -> pd.DataFrame:
        """All stored rows, in `SORT_KEYS` order (see `read_results`)."""
        self._check_open()
        return read_results(self.results_dir)

    def export_csv(self, path: str | os.PathLike) -> Path:
        """Write the table as CSV (atomically) and return its path."""
        return atomic_write_bytes(path, self.table().to_csv(index=False).encode("utf-8"))

    def compact(self) -> int:
        """Merge all parts into `results.parquet` atomically, then delete the merged parts.

        Kill-safe: until the rename the old state is intact; after it, leftover parts whose unit is
        listed in `results.parquet` are ignored by readers and deleted by the next `compact()`.

        Returns:
            Number of parts merged.
        """
        self._check_open()
        compact, keys = _read_compact(self.results_dir)
        tables = [compact] if compact is not None else []
        merged, stale = [], []
        for p in _part_paths(self.results_dir):
            key, t = _read_part(p)
            if key in keys:
                stale.append(p)
                continue
            keys.add(key)
            tables.append(t)
            merged.append(p)
        if merged:
            df = _to_frame(tables)
            t = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
            t = t.replace_schema_metadata({_META_UNITS: json.dumps(sorted(keys)).encode("utf-8")})
            _atomic_write_table(self.results_dir / COMPACT_FILE, t)
        for p in stale + merged:
            p.unlink(missing_ok=True)
        if stale or merged:
            _fsync_dir(self.results_dir / PARTS_DIR)
        self._n_parts = 0
        return len(merged)

    # failures
    def record_failure(self, checkpoint: str, stage: str, message: str, *, step: int | None = None,
                       unit_key: str = "") -> None:
        """Append one failure record (e.g. a checkpoint that failed to load, or NaN rows).

        The whole `failures.jsonl` is rewritten and renamed, so it is never half-written.

        Args:
            checkpoint: checkpoint name.
            stage: where it failed ("load", "extract", "pos", "nan", ...).
            message: human-readable error (e.g. the exception's last line).
            step: the checkpoint's step, if known.
            unit_key: the unit that failed, if any.
        """
        self._check_open()
        path = self.results_dir / FAILURES_FILE
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        rec = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "checkpoint": str(checkpoint), "step": None if step is None else int(step),
               "stage": str(stage), "message": str(message), "unit_key": str(unit_key)}
        atomic_write_bytes(path, old + (json.dumps(rec, sort_keys=True) + "\n").encode("utf-8"))

    def clear_failures(self, **match: str) -> int:
        """Removes the failure records whose fields equal all of `match` (e.g. `unit_key=...`, or
        `checkpoint=..., stage="load"`) once a rerun succeeded where they failed; returns how many."""
        self._check_open()
        path = self.results_dir / FAILURES_FILE
        if not match or not path.exists():
            return 0
        lines = path.read_text(encoding="utf-8").splitlines()
        keep = [ln for ln in lines if ln.strip() and not all(
            str(json.loads(ln).get(k)) == str(v) for k, v in match.items())]
        removed = sum(1 for ln in lines if ln.strip()) - len(keep)
        if removed:
            atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode("utf-8"))
        return removed

    def failures(self) -> pd.DataFrame:
        """Recorded failures (see `read_failures`)."""
        return read_failures(self.results_dir)


def nan_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose value is NaN or infinite (the report lists them as failures)."""
    return df[~np.isfinite(df["value"].to_numpy(dtype=float))]
