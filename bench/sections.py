"""Each benchmark owns one section of docs/BENCHMARKS.md, between `<!-- NAME -->` markers, and rewrites only
that section, so rerunning one benchmark keeps the others' figures."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh. Figures are as measured.\n"


def write_section(name: str, lines: list[str], path: Path = BENCHMARKS) -> None:
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.is_file() else HEADER
    block = "\n".join([start, *lines, end])
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
