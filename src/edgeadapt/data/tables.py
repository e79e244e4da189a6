"""A user's data in the formats people have: JSONL (one object per line), CSV or Parquet (through
`datasets`), with a column mapping onto the row format (`data.prompt_field`, `data.response_field`).

Every row is checked as a JSONL row is; an error names the file, the row (for CSV the line, counting the
header) and what is missing, with the columns that are there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError
from edgeadapt.data.format import probe_problem, read_jsonl, row_problem

EXTENSIONS = (".jsonl", ".csv", ".parquet")


def split_file(folder: Path, split: str) -> Path | None:
    """FOLDER/SPLIT.jsonl, .csv or .parquet, whichever is there (one of them)."""
    found = [
        Path(folder) / f"{split}{ext}" for ext in EXTENSIONS if (Path(folder) / f"{split}{ext}").is_file()
    ]
    if len(found) > 1:
        raise UserError(f"{folder}: both {found[0].name} and {found[1].name}; keep one {split} file.")
    return found[0] if found else None


def read_table(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a CSV or Parquet file, each with where it is (CSV: the line it ends on, header counted;
    Parquet: its row number). Every reader error is one line that names the file and, for CSV, the line."""
    rows = read_csv(path) if path.suffix == ".csv" else read_parquet(path)
    if not rows:
        raise UserError(f"{path}: the dataset is empty (a header, but no rows).")
    return rows


def read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """CSV through Python's own reader, which knows each record's line (quoted cells may span lines)."""
    import csv
    import io

    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            raise UserError(f"{path}: the dataset is empty (no header line, no rows).")
        rows = []
        for row in reader:
            if None in row:  # more cells than the header names
                raise UserError(
                    f"{path}:{reader.line_num}: more cells than the header's {len(reader.fieldnames)} columns"
                )
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise UserError(f"{path}:{reader.line_num}: not readable CSV ({exc})") from None
    return rows


def read_parquet(path: Path) -> list[tuple[int, dict[str, Any]]]:
    import logging

    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs the reader's error before raising it: said once, below
    try:
        table = load_dataset("parquet", data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - any reader error is the file's problem, said in one line
        raise UserError(f"{path}: not a readable Parquet file ({root_cause(exc)})") from None
    finally:
        logger.setLevel(level)
    return list(enumerate(table.to_list(), 1))


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost error a library wrapped (the real reason, not its wrapper's)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def mapped(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The row with the user's columns renamed to prompt/response (missing cells stay missing)."""
    out = {k: v for k, v in row.items() if k not in mapping.values()}
    for ours, theirs in mapping.items():
        value = row.get(theirs)
        if value is not None and value == value:  # NaN (an empty Parquet/CSV cell) is missing
            out[ours] = value if isinstance(value, str) else str(value)
    return out


def read_rows(
    path: Path, mapping: dict[str, str] | None = None, probes: bool = False
) -> list[dict[str, Any]]:
    """Rows of a JSONL, CSV or Parquet file, columns mapped to prompt/response, each checked."""
    path = Path(path)
    mapping = dict(mapping or {})
    renamed = any(k != v for k, v in mapping.items())
    if path.suffix == ".jsonl" and not renamed:
        return read_jsonl(path, probes=probes)
    numbered = read_jsonl_objects(path) if path.suffix == ".jsonl" else read_table(path)
    if not numbered:
        raise UserError(f"{path}: the dataset is empty (no rows).")
    for number, row in numbered:
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
    columns = sorted(numbered[0][1])
    other_shape = not probes and ({"text", "messages"} & set(columns))  # text or chat rows need no mapping
    missing = [theirs for theirs in mapping.values() if theirs not in columns and not other_shape]
    if missing:
        raise UserError(
            f"{path}: no column '{missing[0]}' (columns: {', '.join(columns)}); set data.prompt_field and "
            "data.response_field to the columns holding the prompt and the answer."
        )
    rows = []
    for number, row in numbered:
        row = mapped(row, mapping)
        problem = probe_problem(row) if probes else row_problem(row)
        if problem:
            where = "line" if path.suffix in (".jsonl", ".csv") else "row"
            raise UserError(f"{path}:{number}: {problem} ({where} {number}; columns: {', '.join(columns)})")
        rows.append(row)
    return rows


def read_jsonl_objects(path: Path) -> list[tuple[int, Any]]:
    """JSONL objects with their line numbers, without the row-format check (the mapping comes first)."""
    from edgeadapt.data.format import jsonl_lines

    return list(jsonl_lines(path))
