"""A run's rows, read once: domain train/val/test, general text (and the replay pool), probes and facts."""

from __future__ import annotations

from pathlib import Path

from edgeadapt.core.config import RunConfig
from edgeadapt.core.errors import UserError
from edgeadapt.data import packs
from edgeadapt.data.facts import FACTS
from edgeadapt.data.format import read_jsonl, split_row


class RunData:
    """The run's rows: domain train/val/test, general text and probes."""

    def __init__(self, cfg: RunConfig):
        d = cfg.data
        domain_dir = packs.resolve(d.domain, d.seed, packs.DOMAIN_SPLITS, cfg.base_dir)
        general_dir = packs.resolve(d.general, d.seed, packs.GENERAL_FILES, cfg.base_dir)
        self.domain_name = domain_name(d.domain)
        mapping = {"prompt": d.prompt_field, "response": d.response_field}
        self.train = packs.load_split(domain_dir, "train", mapping)[: d.train_rows or None]
        self.val = packs.load_split(domain_dir, "val", mapping)[: d.val_rows]
        self.test = [r for r in packs.load_split(domain_dir, "test", mapping) if split_row(r)[0] is not None][
            : d.test_rows
        ]
        if not self.test:
            raise UserError(f"{domain_dir}/test.jsonl: needs prompt/response or messages rows to ask.")
        general_text = [r["text"] for r in packs.load_split(general_dir, "text") if "text" in r]
        self.general_text, self.replay_pool = general_text, []
        if d.replay_ratio > 0:  # replay draws from the second half, which no evaluation reads
            half = len(general_text) // 2
            self.general_text, self.replay_pool = general_text[:half], general_text[half:]
            if not half:
                raise UserError(
                    f"{general_dir}/text.jsonl: replay needs at least 2 text rows (half for replay)."
                )
        self.probes = packs.load_split(general_dir, "probes")[: cfg.eval.probes or None]
        self.facts = load_facts(cfg.eval.facts, cfg.base_dir)
        self.sources = {"domain": str(domain_dir), "general": str(general_dir)}
        self.mmlu_excluded = sorted(set(pack_mmlu_subjects(domain_dir)) | set(cfg.eval.mmlu_exclude))
        self.replay_ratio = d.replay_ratio

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "replay_pool": len(self.replay_pool),
            "val": len(self.val),
            "test": len(self.test),
            "probes": len(self.probes),
            "facts": len(self.facts),
            "general_texts": len(self.general_text),
        }

    def unread_text(self) -> list[str]:
        """The second half of the general pack's text, which no evaluation reads (the perplexity chunks come
        from the first paragraphs): for adapters and routers that need general prose to learn from."""
        texts = self.general_text + self.replay_pool
        return texts[len(texts) // 2 :]

    def replay_rows(self) -> list[dict]:
        """General text rows making up `data.replay_ratio` of the training rows (none by default)."""
        ratio, pool = self.replay_ratio, self.replay_pool
        count = round(len(self.train) * ratio / (1 - ratio)) if ratio else 0
        return [{"text": pool[i % len(pool)]} for i in range(count)]


def pack_mmlu_subjects(folder: Path) -> list[str]:
    """The MMLU subjects a domain pack is made from (its meta.json says), which general MMLU leaves out."""
    import json

    meta = Path(folder) / "meta.json"
    try:
        return list(json.loads(meta.read_text()).get("mmlu_subjects", [])) if meta.is_file() else []
    except (OSError, ValueError, AttributeError):
        return []


def domain_name(domain: str) -> str:
    """A pack's name, or a domain folder's last part."""
    return domain if domain in packs.PACKS else Path(domain).name


def load_facts(source: str, base_dir: str) -> list[dict]:
    """The fact_recall questions: the project's own, a user's JSONL of prompt/response rows, or none."""
    if source == "off":
        return []
    if source == "builtin":
        return [{"prompt": q, "response": a} for q, a in FACTS]
    rows = read_jsonl(Path(base_dir or ".", source).expanduser())
    bad = [
        i
        for i, r in enumerate(rows, 1)
        if not (isinstance(r.get("prompt"), str) and isinstance(r.get("response"), str))
    ]
    if bad:
        raise UserError(
            f"{source}: row {bad[0]} needs string 'prompt' and 'response' keys (a fact question)."
        )
    return rows


ROW_WORDS = {
    "train": "training rows",
    "replay_pool": "general rows for replay",
    "val": "validation rows",
    "test": "test questions",
    "probes": "general probes",
    "facts": "fact questions",
    "general_texts": "general texts",
}


def rows_in_words(rows: dict[str, int]) -> str:
    """Row counts as a reader says them ("384 training rows, 16 validation rows, ..."), zeros left out."""
    return ", ".join(f"{n:,} {ROW_WORDS.get(k, k)}" for k, n in rows.items() if n)
