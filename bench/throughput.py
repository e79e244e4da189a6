"""Training and evaluation throughput: edgeadapt's loop against the same training written by hand with
transformers' Trainer defaults, side by side, with model FLOPs utilization.

Run: `python bench/throughput.py [--arch smollm2-135m] [--seq 256 1024] [--methods sft lora hlora adaptq]
[--batch 8] [--steps 4] [--precision auto|bf16|fp32] [--train-only | --eval-only] [--out docs/results/throughput-cpu.json]`; it prints a
Markdown table.

- Models are built from each architecture's config with random weights: speed does not depend on the values.
- Both sides train the same prepared model (`method.prepare`: same trainable parameters, PEFT adapters for
  the LoRA family) on the same rows (length `--seq`, loss on the last quarter of each row, as an SFT row
  scores its response). edgeadapt: `edgeadapt.training.loop.train`. Baseline: `Trainer(model, TrainingArguments(
  output_dir, max_steps, per_device_train_batch_size, learning_rate, use_cpu), DataCollatorForSeq2Seq)`,
  everything else at its default, as a user writes it. Tokens/s = batch x seq / median step time after
  `--warmup` steps.
- MFU = model FLOPs per token x tokens/s / peak FLOP rate. Model FLOPs per token (PaLM's convention, with
  the LM head counted only where a token is scored, since no method needs the other logits): full
  fine-tuning 6 N' + 12 L d T; frozen-base methods 4 N' + 2 N_trainable + 12 L d T (no weight gradients for
  frozen weights), N' = parameters in matmuls (adapters included) with the LM head's weighted by the scored
  share, L layers, d = heads x head_dim, T = seq. The same count serves both sides.
  The peak rate is measured on the same device with a large matrix product in the training's precision
  (`--precision`, as `train.precision`: auto is fp32 on the CPU, bf16 on CUDA).
- Evaluation: perplexity tokens/s on sets shaped like the demo's general prose (every token scored) and
  domain questions (the response scored), edgeadapt's `perplexity` (batched, LM head only where a token is
  scored) against a naive loop (one sequence at a time through the model's own loss; the two perplexities
  must agree), and generation tokens/s (`greedy`, batched with a KV cache, vs one prompt at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import TrainerCallback

from edgeadapt import models, updates
from edgeadapt.core.config import PRECISIONS, TrainConfig
from edgeadapt.core.resources import peak_rss
from edgeadapt.training.loop import train, training_precision

sys.path.insert(0, str(Path(__file__).parent))  # bench/ modules, also when imported from elsewhere
from machine import cpu_name  # noqa: E402
from sections import write_section  # noqa: E402
from synthetic import ARCHS, SCORED, build, rows  # noqa: E402
from throughput_eval import eval_speed  # noqa: E402

OPTIONS = {"sft": {}, "lora": {}, "hlora": {}, "adaptq": {}}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self.start = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def matmul_params(model) -> tuple[int, int]:
    """Parameters in a matmul per token (every Linear, adapters included; the embedding is a lookup), and the
    LM head's share of them."""
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return total, model.get_output_embeddings().weight.numel()


def flops_per_token(model, trainable: int, full: bool, seq: int, scored: float) -> float:
    """Training FLOPs per token the method needs: the LM head only where a token is scored (a share
    `scored` of positions), 6 per weight for trained matrices, 4 for frozen ones (forward and input
    gradient), plus attention 12 L d T."""
    cfg = model.config
    n, head = matmul_params(model)
    heads_dim = cfg.num_attention_heads * (
        getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    )
    attention = 12 * cfg.num_hidden_layers * heads_dim * seq
    per_weight = 6 if full else 4
    return per_weight * (n - head + head * scored) + (0 if full else 2 * trainable) + attention


def peak_flops(device: torch.device, bf16: bool, size: int = 0) -> float:
    size = size or (8192 if device.type == "cuda" else 2048)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = 0.0
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10 if device.type == "cuda" else 3):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, (10 if device.type == "cuda" else 3) * 2 * size**3 / (time.perf_counter() - start))
    return best


def baseline_train(model, tokenizer, data, lr, steps, batch, device, timer, bf16):
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=batch,
            learning_rate=lr,
            use_cpu=device.type == "cpu",
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            bf16=bf16,
        )
        tokenizer.padding_side = "right"
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=to_dataset(data),
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
            callbacks=[timer],
        )
        trainer.train()


def to_dataset(data):
    from datasets import Dataset

    return Dataset.from_list(data)


def edgeadapt_train(model, tokenizer, data, lr, steps, batch, device, timer, bf16):
    cfg = TrainConfig(
        steps=steps, batch_size=batch, warmup_steps=0, eval_every=10_000, curve_general_chunks=1
    )
    with tempfile.TemporaryDirectory() as tmp:
        train(
            model,
            tokenizer,
            "bench",
            lr,
            data,
            {"general": data[:1]},
            cfg,
            Path(tmp),
            device,
            bf16=bf16,
            callbacks=(timer,),
        )


def one_training(arch, method, side, seq, batch, steps, warmup, device, tokenizer, peak, bf16):
    model = build(arch, device)
    cfg = updates.parse_configs({method: OPTIONS[method]})[method]
    data = rows(model.config.vocab_size, seq, batch * (steps + warmup))
    calibration = [{"input_ids": r["input_ids"][:64]} for r in data[:8]]
    model = updates.get(method).prepare(model, cfg, calibration)
    trainable = models.count_parameters(model, trainable_only=True)
    timer = StepTimer()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with peak_rss() as rss:
        (edgeadapt_train if side == "edgeadapt" else baseline_train)(
            model, tokenizer, data, 1e-5, steps + warmup, batch, device, timer, bf16
        )
    step = statistics.median(timer.times[warmup:])
    tokens_per_s = batch * seq / step
    flops = flops_per_token(
        model.get_base_model() if hasattr(model, "get_base_model") else model,
        trainable,
        method == "sft",
        seq,
        SCORED,
    )
    return {
        "arch": arch,
        "method": method,
        "side": side,
        "seq": seq,
        "batch": batch,
        "tokens_per_s": tokens_per_s,
        "step_s": step,
        "trainable_params": trainable,
        "model_flops_per_token": flops,
        "mfu": flops * tokens_per_s / peak,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else rss["peak"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["smollm2-135m"], choices=list(ARCHS))
    parser.add_argument("--seq", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--methods", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--sides", nargs="+", default=["edgeadapt", "baseline"])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--eval-only", action="store_true", help="measure evaluation speed only")
    only.add_argument("--train-only", action="store_true", help="measure training speed only")
    parser.add_argument(
        "--batch", nargs="+", type=int, default=[8], help="rows per step; one per --seq, or one for all"
    )
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="training's matrix products (train.precision)"
    )
    parser.add_argument(
        "--peak-size",
        type=int,
        default=0,
        help="the peak's square product (0: 2048 on the CPU, 8192 on CUDA); smaller where bf16 is emulated",
    )
    parser.add_argument("--out", default="", help="also write the figures as JSON here")
    parser.add_argument("--section", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument(
        "--render", help="recount MFU in a saved --out JSON and print/write its table; no runs"
    )
    args = parser.parse_args()
    if args.render:
        report = recount(json.loads(Path(args.render).read_text()))
        Path(args.render).write_text(json.dumps(report, indent=2))
        print(markdown(report))
        if args.section:
            write_section(
                f"throughput_{report['device_type']}", section_lines(report, args, markdown(report))
            )
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = models.pick_device()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        tokenizer = models.load_tokenizer(models.resolve("smollm2-135m-instruct"))
    except Exception:  # noqa: BLE001 - not fetched: train with the tiny tokenizer (padding only), skip generation
        tokenizer = models.tiny_tokenizer()
    precision = training_precision(TrainConfig(precision=args.precision), device)
    bf16 = precision == "bf16"
    peak = peak_flops(device, bf16, args.peak_size)
    print(f"device {device}, peak {peak / 1e12:.2f} TFLOP/s measured", file=sys.stderr)
    runs = []
    batches = args.batch * len(args.seq) if len(args.batch) == 1 else args.batch
    if len(batches) != len(args.seq):
        parser.error("give one --batch for all --seq, or one per --seq")
    for arch in [] if args.eval_only else args.arch:
        for seq, batch in zip(args.seq, batches):
            for method in args.methods:
                for side in args.sides:
                    result = one_training(
                        arch, method, side, seq, batch, args.steps, args.warmup, device, tokenizer, peak, bf16
                    )
                    print(json.dumps(result), file=sys.stderr)
                    runs.append(result)
    evals = {} if args.train_only else {arch: eval_speed(arch, device, tokenizer) for arch in args.arch}
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "device_type": device.type,
        "command": sys.argv[1:],
        "peak_flops": peak,
        "precision": precision,
        "training": runs,
        "evaluation": evals,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    table = markdown(report)
    print(table)
    if args.section:
        write_section(f"throughput_{device.type}", section_lines(report, args, table))


def recount(report: dict) -> dict:
    """MFU of saved runs with the current FLOP count (adapter matmuls = their trainable parameters)."""
    for arch in {r["arch"] for r in report["training"]}:
        model = build(arch, torch.device("cpu"))
        for r in (r for r in report["training"] if r["arch"] == arch):
            adapters = r["method"] in ("lora", "hlora")
            flops = flops_per_token(model, r["trainable_params"], r["method"] == "sft", r["seq"], SCORED)
            flops += 4 * r["trainable_params"] if adapters else 0  # adapter forward and input gradient
            r["model_flops_per_token"], r["mfu"] = flops, flops * r["tokens_per_s"] / report["peak_flops"]
        del model
    return report


def section_lines(report: dict, args, table: str) -> list[str]:
    return [
        f"## Throughput on {report['device']} (`bench/throughput.py`)",
        "",
        f"- Date: {report['date'][:10]}; {report['threads']} threads; torch {report['versions']['torch']}; "
        f"peak {report['peak_flops'] / 1e12:.3f} TFLOP/s measured with a large matrix product.",
        f"- Command: `python bench/throughput.py {' '.join(report.get('command', []))}`; random weights from each "
        "architecture's config; loss on the last quarter of each row; baseline = the same prepared model in a "
        "plain `Trainer` with default arguments (formulas in the script's docstring).",
        "",
        *table.splitlines(),
        "",
    ]


def markdown(report: dict) -> str:
    lines = [
        "| arch | method | seq | batch | edgeadapt tok/s | baseline tok/s | ratio | MFU | peak memory MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    index = {(r["arch"], r["method"], r["seq"], r["side"]): r for r in report["training"]}
    for (arch, method, seq, side), r in index.items():
        if side != "edgeadapt":
            continue
        base = index.get((arch, method, seq, "baseline"))
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "—"
        lines.append(
            f"| {arch} | {method} | {seq} | {r['batch']} | {r['tokens_per_s']:,.0f} | "
            f"{base['tokens_per_s'] if base else 0:,.0f} | {ratio} | {r['mfu']:.1%} | "
            f"{r['peak_memory_bytes'] / 1e6:,.0f} |"
        )
    for arch, e in report["evaluation"].items():
        lines.append("")
        lines.append(f"{arch} evaluation: " + ", ".join(f"{k} {v:,.0f}" for k, v in e.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
