"""Writes src/edgeadapt/data/task_catalog_large.yaml: every BIG-bench list function whose function phrase no
task of the standard catalog uses, as a training task of the large collection (`tasks.collection:
builtin-large`), described in the three sentence frames the standard catalog's list functions use.

    .venv/bin/python bench/list_function_catalog.py

Reads the BIG-bench source archive (bigbench-1.0.0.tar.gz, no longer on PyPI: put a copy in
$EDGEADAPT_HOME/downloads), since it needs every list function, not only those edgeadapt ships; after it, run
bench/bigbench_extract.py so the shipped task files hold the new catalog's tasks. Concepts come in pairs with
the same function phrase (different example lists): the first of each phrase is kept, so no two tasks share a
description.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from edgeadapt.data.downloads import archive_bigbench_tasks, archive_folder
from edgeadapt.data.task_catalog import CATALOG_FILE, catalog

OUT = CATALOG_FILE.with_name("task_catalog_large.yaml")
# A phrase that starts with one of these is an instruction already; any other is what to return.
VERBS = {
    "remove", "replace", "keep", "swap", "concatenate", "count", "prepend", "insert", "repeat", "reverse",
    "append", "left-rotate", "right-rotate", "add", "take", "interleave", "use", "reflect", "triple",
    "multiply", "list", "if", "double", "sort", "drop",
}  # fmt: skip
HEADER = """\
# The large LoRA-Gen collection's extra tasks (`tasks.collection: builtin-large`: the standard catalog,
# task_catalog.yaml, plus these). Written by bench/list_function_catalog.py, not by hand: every BIG-bench list
# function whose function phrase no standard task uses, in the standard list functions' three sentence frames.
# They share one input format (a bracketed list) and differ only in the function: only the description says
# what to do. Fields as in task_catalog.yaml.
"""


def phrase_of(task: dict) -> str:
    return re.search(r'The target function is "(.*)"', task["description"]).group(1).replace("\u2019", "'")


def frames(phrase: str) -> tuple[str, list[str]]:
    action = phrase if phrase.split()[0] in VERBS else f"return {phrase}"
    return (
        f"You are given a list of natural numbers in square brackets. Apply this function to it: {action}. "
        "Reply with the resulting list, in the same bracket format, and nothing else.",
        [
            f"Input: a bracketed list of whole numbers. Output: the list obtained when you {action}, written "
            "as a bracketed list with commas.",
            f"Transform the list of numbers as follows: {action}. Write only the output list, using square "
            "brackets.",
        ],
    )


def main() -> None:
    archive_bigbench_tasks(["list_functions/c001"])  # the archive's index
    index = json.loads((archive_folder() / "index.json").read_text())
    paths = sorted(k for k in index if re.fullmatch(r"list_functions/c\d+", k))
    tasks = archive_bigbench_tasks(paths)
    standard = catalog()
    taken = {phrase_of(tasks[s.bigbench]) for s in standard if s.bigbench in tasks}
    names = {s.name for s in standard}
    entries = []
    for path in paths:
        phrase = phrase_of(tasks[path])
        if phrase in taken:
            continue
        taken.add(phrase)
        name = "list_" + path.rsplit("/", 1)[1]
        assert name not in names, name
        description, paraphrases = frames(phrase)
        entries.append(
            {
                "name": name,
                "source": "bigbench:list_functions",
                "bigbench": path,
                "kind": "exact",
                "title": "List function",
                "description": description,
                "paraphrases": paraphrases,
                "notes": {"function": phrase, "unseen_concept": False},
            }
        )
    body = yaml.safe_dump({"tasks": entries}, sort_keys=False, allow_unicode=True, width=116)
    Path(OUT).write_text(HEADER + body)
    print(f"{OUT}: {len(entries)} list functions")


if __name__ == "__main__":
    main()
