"""The LoRA-Gen task collection: many small tasks, each with a description (and paraphrases of it) and
prompt/response rows, in one folder (`edgeadapt tasks build`, `edgeadapt tasks list`):

    COLLECTION/collection.json   every task's name, source, kind, description, paraphrases, role
    COLLECTION/NAME/train.jsonl  prompt/response rows (`answers`: every accepted answer; `choices` for choice
    COLLECTION/NAME/test.jsonl   tasks), prompts without the description: the generated adapter must carry it

The built-in collection comes from BIG-bench (`task_catalog`); a folder in the same layout is a user's own
collection (`tasks.collection: PATH`). Held-out tasks never share a source dataset with a training task.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.core.files import write_json_atomic
from edgeadapt.core.paths import edgeadapt_home
from edgeadapt.data.format import read_jsonl, write_jsonl
from edgeadapt.data.task_catalog import TaskSpec, catalog, prompt_of

COLLECTION_FILE = "collection.json"
BUILTIN, BUILTIN_LARGE, TOY = "builtin", "builtin-large", "toy"
VERSION = 1  # bump when the catalog or the split rule changes: a new folder, old builds stay readable


@dataclass
class Task:
    name: str
    source: str
    kind: str
    title: str
    description: str
    paraphrases: list[str]
    heldout: bool = False
    unseen_concept: bool = False
    """A concept of a source that training tasks use, never trained on (reported apart from held-out)."""
    choices: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        return "heldout" if self.heldout else "unseen-concept" if self.unseen_concept else "train"


@dataclass
class Collection:
    folder: Path
    tasks: dict[str, Task]

    def rows(self, name: str, split: str) -> list[dict]:
        return read_jsonl(self.folder / name / f"{split}.jsonl")

    def by_role(self, role: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.role == role]

    @classmethod
    def read(cls, folder: Path) -> Collection:
        path = Path(folder) / COLLECTION_FILE
        if not path.is_file():
            raise UserError(
                f"{folder}: no task collection ({COLLECTION_FILE}); `edgeadapt tasks build CONFIG`."
            )
        try:
            data = json.loads(path.read_text())
            tasks = {t["name"]: Task(**t) for t in data["tasks"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a task collection ({exc}).") from None
        check_disjoint(list(tasks.values()))
        return cls(Path(folder), tasks)

    def write(self) -> None:
        write_json_atomic(self.folder / COLLECTION_FILE, {"tasks": [asdict(t) for t in self.tasks.values()]})


def check_disjoint(tasks: list[Task]) -> None:
    """No held-out task may share a source dataset with a training task (or with an unseen concept)."""
    seen = {t.source for t in tasks if not t.heldout}
    leaks = sorted(t.name for t in tasks if t.heldout and t.source in seen)
    if leaks:
        raise UserError(
            f"held-out task(s) {', '.join(leaks)} share a source dataset with training tasks; "
            "move them to training or hold out their whole source."
        )


def builtin_folder(seed: int, name: str = BUILTIN) -> Path:
    return edgeadapt_home() / "tasks" / f"{name}-v{VERSION}-seed{seed}"


def answer_of(example: dict, kind: str) -> tuple[str, list[str]]:
    """(the reference answer, every accepted answer) of a BIG-bench example."""
    if "target_scores" in example and (kind == "choice" or "target" not in example):
        best = max(example["target_scores"], key=example["target_scores"].get)
        return best, [best]
    target = example.get("target")
    if isinstance(target, list):
        answers = [str(t).strip() for t in target if str(t).strip()]
        return (answers[0], answers) if answers else ("", [])
    if "target_scores" in example and target is not None:  # arithmetic: both; the target is the answer
        return str(target).strip(), [str(target).strip()]
    return str(target or "").strip(), [str(target or "").strip()]


def spec_rows(spec: TaskSpec, examples: list[dict], max_prompt_chars: int) -> list[dict]:
    """A task's rows from its BIG-bench examples: short ones, each prompt once, answers not empty."""
    rows, seen = [], set()
    for example in examples:
        prompt = prompt_of(spec, str(example.get("input", "")))
        answer, answers = answer_of(example, spec.kind)
        if not prompt or not answer or len(prompt) > max_prompt_chars or len(answer) > 80 or prompt in seen:
            continue
        if spec.kind == "choice" and answer not in spec.choices:
            continue
        seen.add(prompt)
        row = {"prompt": prompt, "response": answer, "answers": answers}
        if spec.kind == "choice":
            row["choices"] = list(spec.choices)
        rows.append(row)
    return rows


def split_rows(
    rows: list[dict], kind: str, test: int, train: int, rng: random.Random
) -> dict[str, list[dict]]:
    """Test rows (balanced across the answers of a choice task, so chance is 1/choices) and training rows."""
    rows = sorted(rows, key=lambda r: r["prompt"])
    rng.shuffle(rows)
    test = min(test, len(rows) // 3)  # small tasks (list functions: 32 examples) keep two thirds to train on
    if kind == "choice":
        by_answer: dict[str, list[dict]] = {}
        for row in rows:
            by_answer.setdefault(row["response"], []).append(row)
        per = max(1, min([test // max(1, len(by_answer))] + [len(v) // 2 for v in by_answer.values()]))
        test_rows = [r for group in by_answer.values() for r in group[:per]]
        rng.shuffle(test_rows)
    else:
        test_rows = rows[:test]
    chosen = {id(r) for r in test_rows}
    return {"test": test_rows, "train": [r for r in rows if id(r) not in chosen][:train]}


def build_builtin(
    seed: int, test: int, train: int, max_prompt_chars: int, log=print, name: str = BUILTIN
) -> Collection:
    from edgeadapt.data.bigbench import bigbench_tasks

    specs = catalog(large=name == BUILTIN_LARGE)
    examples = bigbench_tasks(sorted({s.bigbench for s in specs}))
    folder = builtin_folder(seed, name)
    rng = random.Random(seed)
    tasks = {}
    for spec in specs:
        rows = spec_rows(spec, examples[spec.bigbench]["examples"], max_prompt_chars)
        splits = split_rows(rows, spec.kind, test, train, rng)
        if len(splits["test"]) < 4 or len(splits["train"]) < 8:
            log(f"  {spec.name}: skipped ({len(rows)} usable rows)")
            continue
        for split, split_rows_ in splits.items():
            write_jsonl(folder / spec.name / f"{split}.jsonl", split_rows_)
        tasks[spec.name] = Task(
            name=spec.name,
            source=spec.source,
            kind=spec.kind,
            title=spec.title,
            description=spec.description,
            paraphrases=list(spec.paraphrases),
            heldout=spec.heldout,
            unseen_concept=bool(spec.notes.get("unseen_concept")),
            choices=list(spec.choices),
        )
    collection = Collection(folder, tasks)
    check_disjoint(list(tasks.values()))
    collection.write()
    return collection


def build_toy(folder: Path, seed: int, test: int, train: int) -> Collection:
    from edgeadapt.data.toy_tasks import HELDOUT, TOY, UNSEEN, toy_rows

    rng, tasks = random.Random(seed), {}
    for name, (source, kind, _, description, *paraphrases) in TOY.items():
        rows = toy_rows(name, test + train, rng)
        write_jsonl(folder / name / "test.jsonl", rows[:test])
        write_jsonl(folder / name / "train.jsonl", rows[test:])
        tasks[name] = Task(
            name,
            source,
            kind,
            name,
            description,
            paraphrases,
            name in HELDOUT,
            name in UNSEEN,
            ["yes", "no"] if kind == "choice" else [],
        )
    collection = Collection(folder, tasks)
    collection.write()
    return collection


def open_collection(
    where: str, seed: int, test: int, train: int, max_prompt_chars: int, build: bool = True, log=print
) -> Collection:
    """`tasks.collection`: `builtin` (BIG-bench, built once into the cache), `builtin-large` (the same and 181
    more list functions), `toy` (made in code), or a folder holding a collection."""
    if where == TOY:
        folder = edgeadapt_home() / "tasks" / f"toy-v{VERSION}-seed{seed}-{test}-{train}"
        return (
            Collection.read(folder)
            if (folder / COLLECTION_FILE).is_file()
            else build_toy(folder, seed, test, train)
        )
    if where not in (BUILTIN, BUILTIN_LARGE):
        if not Path(where).is_dir():
            raise UserError(
                f"tasks.collection: '{where}' is not builtin, builtin-large, toy or a collection folder."
                f"{did_you_mean(where, [BUILTIN, BUILTIN_LARGE, TOY])}"
            )
        return Collection.read(Path(where))
    folder = builtin_folder(seed, where)
    if (folder / COLLECTION_FILE).is_file():
        return Collection.read(folder)
    if not build:
        raise UserError("The built-in task collection is not built yet: `edgeadapt tasks build CONFIG`.")
    log(f"building the task collection into {folder} (BIG-bench task files shipped with edgeadapt)")
    return build_builtin(seed, test, train, max_prompt_chars, log, where)


def pick(collection: Collection, names: list[str]) -> list[Task]:
    unknown = [n for n in names if n not in collection.tasks]
    if unknown:
        raise UserError(
            f"No task '{unknown[0]}' in {collection.folder}.{did_you_mean(unknown[0], collection.tasks)}"
        )
    return [collection.tasks[n] for n in names]
