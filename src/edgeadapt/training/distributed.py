"""Which process this is under a multi-process launch (`torchrun`, `accelerate launch`), from accelerate's
`PartialState`: every rank trains, rank 0 saves and evaluates."""

from __future__ import annotations


def _state():
    import torch
    from accelerate import PartialState

    # On a machine without CUDA, accelerate looks for a CPU launch only when told the run is on the CPU (as
    # the Trainer tells it with `use_cpu`); the state is one per process and shared with the Trainer.
    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True outside a multi-process launch, and on rank 0 within one."""
    return _state().is_main_process


def world_size() -> int:
    return _state().num_processes


def wait_for_everyone() -> None:
    _state().wait_for_everyone()
