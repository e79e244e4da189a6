"""One more generator scored beside a finished LoRA-Gen study (`bench/loragen_add.py`): trained (or, with
`resume`, reused), its rows, controls and forgetting measured as `loragen eval` measures them (the same parts,
so a later `loragen eval --resume` of the whole study reuses them), and added to a copy of the study's
loragen.json, whose summary is made again. Every other row is the file's. For a study whose run folder, and
with it the trained baselines, is gone, where training the baselines again costs hours.

The multi-task LoRA can be trained again the same way (`add_multitask`), under other steps, batch or learning
rate: to put it on the budget of a generator added under other steps, so that the two stand on one budget.

The file must have been measured on the same rows by the same base model: its task groups must be this
config's, and the base model's zero-shot answers on the seen tasks, measured again, must equal the file's
(the score and the answers it kept). Otherwise nothing is trained or measured.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from edgeadapt.core.config import RunConfig
from edgeadapt.core.errors import UserError
from edgeadapt.evaluation.task_scores import Prompting
from edgeadapt.loragen.registry import WEIGHTS
from edgeadapt.studies.loragen import (
    ADAPTER_WEIGHTS,
    adapter_bytes,
    generator_budget,
    generator_dir,
    lora_update_dir,
    sub_run,
    train_generator,
    train_lora,
)
from edgeadapt.studies.loragen_eval import (
    Evaluation,
    Forgetting,
    forgetting_part,
    generated_part,
    part_runner,
)
from edgeadapt.studies.parts import digest


def add_generator(
    cfg: RunConfig,
    spec: str,
    results: dict[str, Any],
    source: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
    replace: bool = False,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """`results` (the loragen.json read from `source`) with the generator of `spec` trained, measured and
    added, and the summary made again. `replace`: a generator the file scores already is measured again and
    its rows replaced (after the study's controls changed, or the generator was trained again). `overrides`:
    the config overrides `cfg` was loaded with, recorded (a generator of another shape than the study's, its
    targets or experts, is told apart by them: the budget records how it trained, not its shape)."""
    from edgeadapt.studies.loragen_summary import summarize

    if spec in results["generated"] and not replace:
        raise UserError(
            f"{source} already scores generator {spec}: nothing to add (--replace measures it again)."
        )
    evaluation = Evaluation(cfg, log)
    check_same_rows(evaluation, results, source)  # before an hour of training, not after
    train_generator(cfg, evaluation.collection, spec, resume, log)
    generator_id = digest(generator_dir(cfg, spec) / WEIGHTS)
    seconds: list[float] = []
    run_part = part_runner(cfg, resume, log, seconds)
    rows = run_part(*generated_part(evaluation, spec, generator_id))
    forgetting = run_part(*forgetting_part(Forgetting(evaluation), spec, generator_id))
    out = copy.deepcopy(results)
    out["generated"][spec] = rows
    budget = generator_budget(cfg)
    replaced = spec in results["generated"]
    out["generated"][spec]["added"] = added_record(source, replaced, seconds, budget, overrides)
    out["forgetting"][f"generated[{spec}]"] = forgetting
    out["summary"] = summarize(out)
    return out


def add_multitask(
    cfg: RunConfig,
    results: dict[str, Any],
    source: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """`results` with the multi-task LoRA trained again under `cfg`'s `loragen.steps` and `batch_size` (its lr:
    its method's, as in the study; with `resume`, reused or resumed), its rows on every task and its forgetting measured as `loragen eval`
    measures them, the file's replaced (`lora.multitask_added` records the budget) and the summary made again.
    The per-task LoRAs and every generator's rows are the file's."""
    from edgeadapt.studies.loragen_summary import summarize

    evaluation = Evaluation(cfg, log)
    check_same_rows(evaluation, results, source)
    tasks = evaluation.collection.by_role("train")
    trained = train_lora(
        cfg, sub_run(cfg, "multitask"), evaluation.collection, tasks, cfg.loragen.steps, resume, log
    )
    folder = lora_update_dir(cfg, "multitask")
    identity = {"adapter": digest(folder / ADAPTER_WEIGHTS)}
    seconds: list[float] = []
    run_part = part_runner(cfg, resume, log, seconds)
    rows = run_part("lora-multitask", evaluation.multitask_rows, "row 4: the multi-task LoRA", identity)
    general = Forgetting(evaluation)
    heading = "forgetting of general ability: the multi-task LoRA"
    forgetting = run_part("forgetting-multitask", general.multitask, heading, identity)
    out = copy.deepcopy(results)
    out["lora"]["multitask"] = rows
    out["lora"]["multitask_bytes"] = adapter_bytes(folder)
    budget = {
        "steps": trained.steps,
        "batch_size": cfg.loragen.batch_size,
        "lr": trained.lr,
        "precision": trained.precision,
        "group_by_length": trained.group_by_length,
        "seed": cfg.train.seed,
    }
    out["lora"]["multitask_added"] = added_record(source, True, seconds, budget, overrides)
    out["forgetting"]["multitask"] = forgetting
    out["summary"] = summarize(out)
    return out


def added_record(
    source: str, replaced: bool, seconds: list[float], budget: dict[str, Any], overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """What an addition to `source` records: when, how long its measuring took, its training `budget` (steps,
    batch, lr, precision, batching: a generator or baseline added under other steps than the file's is not on
    its budget) and the config `overrides` it was made with (its shape: targets, experts)."""
    return {
        "to": source,
        "replaced": replaced,
        "date": str(datetime.now(timezone.utc).date()),
        "seconds": round(sum(seconds), 1),
        "budget": budget,
        "overrides": list(overrides),
    }


def check_same_rows(evaluation: Evaluation, results: dict[str, Any], source: str) -> None:
    """Refuse a file measured on other tasks, rows or base model than this config's: its groups must match,
    and so must the base model's zero-shot answers on the seen tasks (measured again, untimed)."""
    answered = results.get("answer_precision", "fp32")
    if answered != evaluation.cfg.loragen.answer_precision:
        raise UserError(
            f"{source} was answered in {answered}, this config answers in "
            f"{evaluation.cfg.loragen.answer_precision}: pass loragen.answer_precision={answered}."
        )
    seed = (results.get("budget") or {}).get("seed")  # recorded from 2026-12-06
    if seed not in (None, evaluation.cfg.train.seed):
        raise UserError(
            f"{source}'s LoRAs trained on seed {seed}, this config on seed {evaluation.cfg.train.seed}: "
            f"pass train.seed={seed}, or add to that seed's study."
        )
    if results.get("groups") != evaluation.group_names():
        raise UserError(
            f"{source} was measured on other tasks than this config chooses: pass the config, overrides and "
            "seed the file's study ran with."
        )
    kept = results["prompting"]["zero-shot"]
    differing = []
    for task in evaluation.groups["seen"]:
        again = evaluation.measure(task, Prompting("title", task.title), "zero-shot (check)", timed=False)
        if (again["score"], again["samples"]) != (kept[task.name]["score"], kept[task.name]["samples"]):
            differing.append(task.name)
    if differing:
        # bf16 greedy answers follow the CPU's bf16 kernels (AMX, AVX512-BF16 or none): a study answered in
        # bf16 on another machine differed on an Intel Xeon with AMX on 28 of 48 seen tasks, fp32's on none
        cause = (
            "another base model, or, answered in bf16, on another kind of CPU (add to an fp32 study instead)"
            if answered == "bf16"
            else "another base model"
        )
        raise UserError(
            f"{source}: the base model's zero-shot answers differ from the file's on {', '.join(differing)}: "
            f"it was measured on other rows or {cause}; its rows cannot stand beside new ones."
        )
