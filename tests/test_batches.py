"""Batches of like length in random order (`train.group_by_length`, edgeadapt.data.batches)."""

from __future__ import annotations

import random

import pytest

from edgeadapt.data.batches import WINDOW, grouped_by_length


def padding(lengths: list[int], order: list[int], batch_size: int) -> float:
    batches = [[lengths[i] for i in order[n : n + batch_size]] for n in range(0, len(order), batch_size)]
    return 1 - sum(map(sum, batches)) / sum(max(b) * len(b) for b in batches)


def test_batches_hold_rows_of_like_length_in_random_order():
    rng = random.Random(0)
    lengths = [rng.randint(20, 160) for _ in range(2000)]
    batch = 8
    order = grouped_by_length(lengths, batch, 3000, seed=1)
    assert len(order) == 3000
    epoch = order[: len(lengths) - len(lengths) % batch]  # each epoch: every row at most once
    assert len(set(epoch)) == len(epoch)
    random_order = rng.sample(range(len(lengths)), len(lengths))
    assert padding(lengths, order, batch) < 0.05 < 0.3 < padding(lengths, random_order, batch)
    # the batches of one window do not come longest (or shortest) first, as LengthGroupedSampler's do
    longest = [max(lengths[i] for i in order[n : n + batch]) for n in range(0, WINDOW * batch, batch)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    assert grouped_by_length(lengths, batch, 3000, seed=1) == order  # a resumed run reads the same batches
    assert grouped_by_length(lengths, batch, 3000, seed=2) != order


def test_batches_never_straddle_two_epochs():
    """Ten rows in batches of four: each epoch gives two whole batches, the two rows left over differ."""
    lengths = list(range(10, 20))
    order = grouped_by_length(lengths, 4, 40, seed=0)
    epochs = [order[n : n + 8] for n in range(0, 40, 8)]
    assert all(len(set(e)) == 8 for e in epochs)
    assert len({frozenset(e) for e in epochs}) > 1
    with pytest.raises(ValueError, match="3 rows cannot fill a batch of 4"):
        grouped_by_length([5, 6, 7], 4, 8, seed=0)
