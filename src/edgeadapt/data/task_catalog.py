"""The task collection's catalog, read from `task_catalog.yaml` beside this module: which BIG-bench tasks (and
Natural Instructions v1 subtasks, which BIG-bench ships) become LoRA-Gen tasks, with the description a
generator reads and two paraphrases of it. The data file is the catalog; this module only reads and checks it.

How the tasks were chosen (docs/LORAGEN.md): short rows (inputs of a sentence or less, answers of a few
words), an automatic score, and a skill the 135M model can move. Groups of tasks share one input format and
differ only in what they ask (a list and a function to apply to it; a word and a form to give; one MC-TACO
question and one of three judgements about it), so that the description, not the input, says what to do.
Held-out tasks come from source datasets no training task uses (`source` below); `tasks.check_disjoint`
enforces it.

Descriptions: BIG-bench's own one-line descriptions are too terse to act on (`A class for English plurals`),
so each task has a hand-written paragraph and two hand-written paraphrases (for list functions, the source's
own function phrase inside three sentence frames); Natural Instructions tasks use their crowdsourced
Definition as the description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

CATALOG_FILE = Path(__file__).with_name("task_catalog.yaml")
LARGE_FILE = Path(__file__).with_name("task_catalog_large.yaml")
"""The large collection's extra training tasks (written by bench/list_function_catalog.py)."""
KINDS = ("exact", "choice")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: str
    """The source dataset: no held-out task shares one with a training task."""
    bigbench: str
    """The BIG-bench task path its examples come from."""
    kind: str
    """`exact`: the generated answer must match a reference (normalized); `choice`: the option with the
    highest log-likelihood must be the right one."""
    title: str
    """A short task name: all the zero-shot baseline is told."""
    description: str
    paraphrases: tuple[str, ...]
    heldout: bool = False
    choices: tuple[str, ...] = ()
    """For choice tasks: the options, in BIG-bench's spelling."""
    template: str = "{input}"
    """How an example's input becomes the prompt the tuned model sees (no description in it)."""
    last_line: bool = False
    """Keep only the input's last line (modified_arithmetic puts five solved examples before it)."""
    notes: dict = field(default_factory=dict)


def catalog(large: bool = False) -> list[TaskSpec]:
    """Every task: the training tasks, the held-out ones, and the unseen list-function concepts; `large`: and
    the large collection's extra training tasks."""
    files = [CATALOG_FILE, LARGE_FILE] if large else [CATALOG_FILE]
    known = {f.name for f in fields(TaskSpec)}
    specs = []
    for file in files:
        specs += [spec_of(entry, number, file, known) for number, entry in enumerate(read_tasks(file), 1)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{CATALOG_FILE}: a task name appears twice")
    return specs


def read_tasks(file: Path) -> list[dict]:
    return yaml.safe_load(file.read_text())["tasks"]


def spec_of(entry: dict, number: int, file: Path, known: set[str]) -> TaskSpec:
    odd = sorted(set(entry) - known)
    if odd or entry.get("kind") not in KINDS:
        raise ValueError(f"{file}: task {number} ({entry.get('name')}): unknown field {odd} or kind")
    for key in ("paraphrases", "choices"):
        if key in entry:
            entry[key] = tuple(entry[key])
    return TaskSpec(**entry)


def prompt_of(spec: TaskSpec, example_input: str) -> str:
    text = example_input.strip()
    if spec.last_line:
        text = text.splitlines()[-1].strip()
    return spec.template.format(input=re.sub(r"[ \t]+\n", "\n", text))
