"""`edgeadapt train`: train each method of a run from a fresh copy of the base model and save its update.

With `resume`, a method that finished is reused and one that was interrupted continues from its last
checkpoint. Under `torchrun` every rank trains, rank 0 saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from edgeadapt.data.format import encode, text_chunks
from edgeadapt.runs.results import EVAL_CACHE
from edgeadapt.runs.run import Run, non_defaults
from edgeadapt.training.distributed import is_main_process, wait_for_everyone, world_size
from edgeadapt.training.loop import TrainResult, train


def train_run(run: Run, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """Train every method of the run (or reuse finished ones with `resume`); return their results."""
    from transformers import set_seed

    cfg, tokenizer, data = run.cfg, run.tokenizer, run.data  # bad data is an error before anything changes
    run.invalidate_results()
    where = f"{run.device}" + (f" x {world_size()} processes" if world_size() > 1 else "")
    if is_main_process():
        log(f"Run '{cfg.name}': model {cfg.model.name} on {where}, domain {data.domain_name} {data.sizes()}")
    train_rows = [encode(tokenizer, r, cfg.data.max_length) for r in data.train + data.replay_rows()]
    calibration = train_rows[: len(data.train)]  # domain rows only, for methods that profile the data
    curve_sets = {
        "domain": [encode(tokenizer, r, cfg.data.max_length) for r in data.val],
        "general": text_chunks(
            tokenizer, data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
        ),
    }
    bf16 = run.device.type == "cuda" and cfg.model.dtype != "float32"
    results = {}
    for name, method_cfg in run.method_cfgs.items():
        folder, method = run.dir / name, run.method(name)
        done = TrainResult.load(folder) if resume else None
        if done is not None:
            log(f"[{name}] already trained ({done.steps} steps): reusing {folder / 'update'}")
            results[name] = done
            continue
        (folder / EVAL_CACHE).unlink(missing_ok=True)  # its update is about to change
        changed = "".join(f", {k} {v}" for k, v in non_defaults(method_cfg).items() if k != "lr")
        log(f"[{name}] {method.description}; lr {method_cfg.lr}, {cfg.train.steps} steps{changed}")
        model = run.load_model(torch.float32)  # fp32 master weights
        # Adapters draw their initial weights from the global generator: seed it here, so a variant starts
        # from the same weights whatever the process trained before it (the Trainer seeds only later).
        set_seed(cfg.train.seed)
        model = method.prepare(model, method_cfg, calibration)
        result = train(
            model,
            tokenizer,
            name,
            method_cfg.lr,
            train_rows,
            curve_sets,
            cfg.train,
            folder,
            run.device,
            bf16=bf16,
            resume=resume,
        )
        if is_main_process():  # under torchrun every rank holds the same weights; one writes them
            files = method.save_update(model, run.update_dir(name))
            result.update_files = [str(f.relative_to(folder)) for f in files]
            result.save(folder)  # last: its presence means the update is complete
        wait_for_everyone()
        results[name] = TrainResult.load(folder) or result
        del model
    return results
