"""What several test modules share (a test module never imports another): config paths, a token batch,
a method prepared on a tiny model, one training step and a fake BIG-bench archive."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import torch

from edgeadapt import updates
from edgeadapt.data import downloads

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SMOKE = CONFIGS / "smoke.yaml"

# Domain rows for methods that profile the data before training (adaptq).
CALIBRATION = [{"input_ids": list(range(3, 3 + n))} for n in (6, 10, 14)]


def batch(seed=0):
    torch.manual_seed(seed)
    return torch.randint(3, 200, (2, 12))


def prepared(name, model, **options):
    cfg = updates.parse_configs({name: options})[name]
    return updates.get(name).prepare(model, cfg, CALIBRATION)


def one_step(model, lr=1e-2):
    model.train()
    ids = batch(1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    model.eval()


def fake_archive(tmp_path, monkeypatch, tasks: dict[str, list[str]]) -> list[str]:
    """A BIG-bench archive holding `tasks` (path -> example inputs); returns the list of passes over it."""
    path = tmp_path / "bigbench.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for task, inputs in tasks.items():
            examples = [{"input": text, "target": "2"} for text in inputs]
            data = json.dumps({"name": task, "examples": examples}).encode()
            member = tarfile.TarInfo(f"{downloads.BIGBENCH_ROOT}{task}/task.json")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    passes = []
    monkeypatch.setenv("EDGEADAPT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(downloads, "fetch", lambda name: passes.append(name) or path)
    return passes
