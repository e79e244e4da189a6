"""The generator registry: each design of a description-to-LoRA generator registers itself once (as a method
does in `updates.registry` and a router in `routing.registry`). A generator folder's generator.json names its
`kind`; whoever opens a folder or trains one dispatches through here, and nothing else keeps a table of the
designs or branches on their names.

A generator kind provides:

- `build(setup) -> generator`: an untrained generator for the training descriptions of a `GeneratorSetup`,
  ready to train through `GeneratedLoRAModel` (its reader or encoder opened, every description read);
- `load(folder, base_dir, encoder) -> generator`: a trained one, in eval mode, with its reader or encoder;
- `regularizers(generator, cfg) -> tuple`: terms of its own the training loop adds to the loss (the pool's
  load balancing), empty when it has none;
- `reads`: the `loragen` settings only this design uses.

A generator object (an `nn.Module`; `hypernet.HyperLoRA`, `pool.PoolLoRA`) has a `cfg` with `kind`, `encoder`,
`rank`, `scaling`, `modules`, `module_paths`, `base_model`, `training_descriptions` and
`familiar_similarity`, and:

- `check(text, where)`: the description, stripped, or a `UserError` when its reader cannot read it;
- `read(texts)`: what the generator computes from descriptions before the adapter (no gradient);
- `weights(read)`: per target module, A (n, layers, rank, in) and B (n, layers, out, rank);
- `fingerprint(read)`: one L2-normalized vector per description (how close it is to the training ones);
- `for_descriptions(indices)`: the weights for training descriptions by index, with gradient (training);
- `save(folder)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError, unknown

CONFIG, WEIGHTS = "generator.json", "generator.safetensors"  # every kind's folder holds both
DEFAULT_KIND = "hypernet"  # folders written before there were kinds hold this design


@dataclass
class GeneratorSetup:
    """What a generator is built from: the `loragen:` section, the description reader's spec, the training
    descriptions and the frozen edge model whose target modules it writes."""

    cfg: Any
    """`core.loragen_config.LoraGenConfig`."""
    encoder: str
    texts: list[str]
    base: Any
    base_model: str
    seed: int = 0
    """Set right before the generator's parameters are drawn (not before its reader loads)."""
    base_dir: str = ""
    device: Any = None
    encoder_object: Any = None
    """An encoder already open (tests, and a study that compares several generators over one encoder)."""


@dataclass(frozen=True)
class GeneratorKind:
    name: str
    description: str
    build: Callable[[GeneratorSetup], Any]
    load: Callable[..., Any]
    regularizers: Callable[[Any, Any], tuple] = lambda generator, cfg: ()
    reads: tuple[str, ...] = ()
    """The `loragen` settings of this design alone (`experts`, `hidden`): changing one retrains generators
    of this kind, and only those, under `loragen train --resume`."""


GENERATORS: dict[str, GeneratorKind] = {}


def register_generator(**fields: Any) -> GeneratorKind:
    """Add a generator kind (the fields of `GeneratorKind`); called once at the bottom of its module."""
    kind = GeneratorKind(**fields)
    if kind.name in GENERATORS:
        raise ValueError(f"generator kind '{kind.name}' is registered twice")
    GENERATORS[kind.name] = kind
    return kind


def get_generator(name: str, where: str = "") -> GeneratorKind:
    """The registered kind `name`; an unknown one is an error naming `where` (a config key or file)."""
    if name not in GENERATORS:
        error = unknown("generator kind", name, GENERATORS)
        raise UserError(f"{where}: {error}") if where else error
    return GENERATORS[name]


def split_spec(spec: str, default_kind: str) -> tuple[str, str]:
    """A generator spec of `loragen.encoder`/`compare_encoders` as (kind, encoder): `pool:model:NAME` names
    its kind, a plain `minilm` or `model:NAME` takes `default_kind`."""
    head, _, rest = spec.partition(":")
    return (head, rest) if head in GENERATORS and rest else (default_kind, spec)


def generator_kind_of(folder: Path) -> GeneratorKind:
    """The registered kind a generator folder's generator.json names."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise UserError(
            f"{folder}: not a generator (no {CONFIG}); `edgeadapt loragen train CONFIG` makes one."
        )
    try:
        name = json.loads(path.read_text()).get("kind", DEFAULT_KIND)
        if not isinstance(name, str):
            raise TypeError("kind is not a string")
    except (OSError, ValueError, AttributeError, TypeError, RecursionError) as exc:
        raise UserError(f"{path}: not a generator config ({exc}).") from None
    return get_generator(name, str(path))


def save_generator(generator: Any, folder: Path) -> None:
    """A generator's weights (safetensors) and its config, with its kind, into `folder`."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in generator.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps({"kind": generator.cfg.kind, **asdict(generator.cfg)}, indent=1))


def read_generator(folder: Path, config_class: type) -> tuple[Any, dict]:
    """(its kind's config, its weights) from a generator folder, or one clear error."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder}: no {WEIGHTS}; `edgeadapt loragen train CONFIG` makes a generator.")
    return read_config(folder, config_class), load_file(str(folder / WEIGHTS))


def read_config(folder: Path, config_class: type) -> Any:
    """A generator folder's generator.json as its kind's config class, or one clear error."""
    path = Path(folder) / CONFIG
    try:
        fields = json.loads(path.read_text())
        fields.pop("kind", None)
        return config_class(**fields)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a generator config ({exc}).") from None
