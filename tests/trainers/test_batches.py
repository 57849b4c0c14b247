"""The data order: plain and grouped by length, per worker."""

from __future__ import annotations

import random

import pytest

from transfer_trainers import loop


@pytest.mark.parametrize("n, batch, world", [(1000, 16, 1), (1000, 16, 2), (437, 32, 2), (90, 8, 3)])
def test_length_groups_keep_the_examples_and_the_step_count(n, batch, world):
    rng = random.Random(n)
    lengths = [rng.randint(3, 64) for _ in range(n)]
    for epoch in (0, 1):
        plain = [loop.epoch_batches(n, batch, 7, epoch, r, world) for r in range(world)]
        grouped = [loop.epoch_batches(n, batch, 7, epoch, r, world, lengths) for r in range(world)]
        steps = loop.steps_per_epoch(n, batch, world)
        for r in range(world):
            assert len(grouped[r]) == len(plain[r]) == steps  # every worker takes the same steps
            for b in range(steps):  # and the same number of examples at each step
                assert len(grouped[r][b]) == len(grouped[0][b])
        every = sorted(i for r in range(world) for bat in grouped[r] for i in bat)
        assert every == sorted(i for r in range(world) for bat in plain[r] for i in bat)  # the same examples
        assert len(set(every)) == len(every) == (n // world) * world
        # a pure function of (seed, epoch): a resumed run sees the same batches
        assert grouped[0] == loop.epoch_batches(n, batch, 7, epoch, 0, world, lengths)


def test_length_groups_cut_the_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 60) for _ in range(4000)]
    plain = loop.epoch_batches(4000, 32, 0, 0, 0, 1)
    grouped = loop.epoch_batches(4000, 32, 0, 0, 0, 1, lengths)

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(grouped) < 0.6 * padded(plain)
    # the batches are still shuffled: not sorted by length across the epoch
    firsts = [max(lengths[i] for i in b) for b in grouped]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
