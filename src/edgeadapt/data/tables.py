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


def read_table(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a CSV or Parquet file, and how many lines come before the first row (CSV's header)."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    kind = "csv" if path.suffix == ".csv" else "parquet"
    try:
        table = load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - any reader error is the file's problem, said in one line
        raise UserError(
            f"{path}: not a readable {kind.upper()} file ({str(exc).splitlines()[0][:200]})"
        ) from None
    return table.to_list(), 1 if kind == "csv" else 0


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
    if path.suffix == ".jsonl":
        raw, offset = [r for r in read_jsonl_objects(path)], 0
    else:
        raw, offset = read_table(path)
    if not raw:
        raise UserError(f"{path}: the dataset is empty (no rows).")
    columns = sorted(raw[0])
    other_shape = not probes and ({"text", "messages"} & set(columns))  # text or chat rows need no mapping
    missing = [theirs for theirs in mapping.values() if theirs not in columns and not other_shape]
    if missing:
        raise UserError(
            f"{path}: no column '{missing[0]}' (columns: {', '.join(columns)}); set data.prompt_field and "
            "data.response_field to the columns holding the prompt and the answer."
        )
    rows = []
    for number, row in enumerate(raw, 1 + offset):
        row = mapped(row, mapping)
        problem = probe_problem(row) if probes else row_problem(row)
        if problem:
            where = "line" if path.suffix in (".jsonl", ".csv") else "row"
            raise UserError(f"{path}:{number}: {problem} ({where} {number}; columns: {', '.join(columns)})")
        rows.append(row)
    return rows


def read_jsonl_objects(path: Path) -> list[dict[str, Any]]:
    """JSONL objects without the row-format check (the mapping comes first)."""
    import json

    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(
                        f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
    return rows
