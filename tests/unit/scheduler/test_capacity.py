"""Quotas per GPU type (capacity.QuotaLedger), alone and through every path of a cycle."""

from __future__ import annotations

import sys

import pytest

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler import Action, Decision, QueueQuota
from transfer_operator.scheduler.capacity import QuotaLedger
from transfer_operator.scheduler.schedule import SolvePath, schedule_cycle

from .builders import a_job, a_pool, held, snapshot_of

# A100 is the cheaper type (per A100-hour: H100 is 2.6x as fast): a job of any type goes there
# unless its quota says no.
A100 = a_pool("a100-pool", gpu="A100", nodes=2, usd=2.0)
H100 = a_pool("h100-pool", gpu="H100", nodes=2, usd=8.0)


@pytest.fixture(params=[SolvePath.GREEDY, SolvePath.LOCAL_SEARCH, SolvePath.EXACT])
def decide(request, monkeypatch):
    """Decide through one path of step 4: each must keep the quotas."""
    path = request.param
    if path is SolvePath.GREEDY:
        monkeypatch.setattr(sys.modules["transfer_operator.scheduler.schedule"], "IMPROVE_MAX_JOBS", 0)

    def run(snapshot, *jobs) -> dict[str, Decision]:
        result = schedule_cycle(snapshot, list(jobs), exact_budget_s=1.0 if path is SolvePath.EXACT else 0)
        if path is SolvePath.EXACT:
            pytest.importorskip("highspy")
        assert result.path in (path, SolvePath.GREEDY)  # a planned preemption makes any cycle greedy
        return {d.job_key: d for d in result.decisions}

    return run


def ledger(*quotas: QueueQuota, allocations=(), pools=(A100, H100)) -> QuotaLedger:
    return QuotaLedger.build(quotas, allocations, pools)


@pytest.mark.parametrize(
    "nominal, gpu, want",
    [
        pytest.param({"H100": 8}, "H100", "H100", id="named-type"),
        pytest.param({"h100": 8}, "H100", "H100", id="case-insensitive"),
        pytest.param({"H100": 8}, "A100", "A100", id="unnamed-type-no-star"),
        pytest.param({"H100": 8, "*": 4}, "A100", "*", id="unnamed-type-star"),
        pytest.param(8, "A100", "*", id="one-count-is-star"),
    ],
)
def test_a_pool_type_counts_against_its_key(nominal, gpu, want):
    assert ledger(QueueQuota("q", nominal)).key_of("q", gpu) == want


def test_usage_is_counted_per_gpu_type():
    book = ledger(QueueQuota("q", {"A100": 8, "H100": 8}), allocations=(held("ns/a", "a100-pool", queue="q"),))
    assert book.used("q", "A100") == 8 and book.used("q", "H100") == 0
    assert book.why_not("q", "A100", 8) == "queue q: 8 A100 GPUs in use + 8 requested > nominal quota 8 for A100"
    assert book.why_not("q", "H100", 8) is None  # the per-type quotas do not add up to 16 of either


def test_cohort_lends_typed_quotas_to_their_type_and_star_quotas_to_any():
    book = ledger(
        QueueQuota("hopper", {"H100": 8}, "research"),
        QueueQuota("ampere", {"A100": 8}, "research"),
        QueueQuota("any", 8, "research"),
    )
    # A100: ampere's unused 8 A100s and any's unused 8 of any type.
    assert book.why_not("hopper", "A100", 16) is None
    assert book.why_not("hopper", "A100", 17) == (
        "queue hopper: 0 A100 GPUs in use + 17 requested > nominal quota 0 for A100, "
        "and cohort research has only 16 unused GPUs for A100 to lend"
    )
    book.take("hopper", "A100", 16)
    # any's `*` GPUs went to A100: nothing is left to lend for L4 (ampere's A100s serve A100 only).
    assert book.why_not("ampere", "L4", 1) == (
        "queue ampere: 0 L4 GPUs in use + 1 requested > nominal quota 0 for L4, "
        "and cohort research has only 0 unused GPUs for L4 to lend"
    )
    # A queue's own nominal quota is always its own, even when the cohort lent it meanwhile.
    assert book.why_not("any", "L4", 8) is None and book.why_not("ampere", "A100", 8) is None


def test_a_star_quota_is_not_lent_twice():
    book = ledger(QueueQuota("borrower", {}, "c"), QueueQuota("lender", 8, "c"))
    book.take("borrower", "A100", 4)
    assert book.why_not("borrower", "H100", 5) is not None  # 4 of the 8 went to A100
    assert book.why_not("borrower", "H100", 4) is None
    book.give_back("borrower", "A100", 4)
    assert book.why_not("borrower", "H100", 8) is None


def test_borrowing_limit_is_per_gpu_type():
    book = ledger(QueueQuota("hopper", {"H100": 8}, "research", 4), QueueQuota("ampere", {"A100": 16}, "research"))
    assert book.why_not("hopper", "A100", 4) is None
    assert book.why_not("hopper", "A100", 5) == (
        "queue hopper: needs to borrow 5 A100 GPUs, over its borrowing limit 4"
    )


def test_move_changes_the_key_only_when_the_quota_takes_it():
    book = ledger(QueueQuota("q", {"A100": 8, "H100": 4}))
    book.take("q", "A100", 8)
    assert not book.move("q", 8, "A100", "H100") and book.used("q", "A100") == 8
    assert book.move("q", 4, "A100", "H100") and book.used("q", "H100") == 4
    book.move_back("q", 4, "H100", "A100")
    assert book.used("q", "A100") == 8 and book.used("q", "H100") == 0


def test_a_job_of_any_type_goes_to_the_type_its_queue_has_quota_for(decide):
    quotas = (QueueQuota("hopper", {"H100": 8}),)
    decision = decide(snapshot_of(A100, H100, quotas=quotas), a_job(queue="hopper"))["ns/job"]
    assert decision.action is Action.ADMIT and decision.placement.pool == "h100-pool"  # not the cheaper A100


def test_a_job_waits_naming_the_types_when_no_type_has_quota_left(decide):
    quotas = (QueueQuota("hopper", {"H100": 8}),)
    snapshot = snapshot_of(A100, H100, quotas=quotas, allocations=(held("ns/old", "h100-pool", queue="hopper"),))
    decision = decide(snapshot, a_job(queue="hopper"))["ns/job"]
    assert decision.action is Action.WAIT and decision.reason is Reason.QUOTA_EXCEEDED
    assert decision.message == (
        "queue hopper: 0 A100 GPUs in use + 8 requested > nominal quota 0 for A100; "
        "queue hopper: 8 H100 GPUs in use + 8 requested > nominal quota 8 for H100"
    )


def test_a_job_waits_for_room_in_its_quotas_type_not_on_another_type(decide):
    quotas = (QueueQuota("hopper", {"H100": 16}),)
    full = tuple(held(f"ns/other-{i}", "h100-pool", queue="others") for i in range(2))
    decision = decide(snapshot_of(A100, H100, quotas=quotas, allocations=full), a_job(queue="hopper"))["ns/job"]
    assert decision.action is Action.WAIT and decision.reason is Reason.QUOTA_EXCEEDED
    assert decision.message.startswith(
        "queue hopper has quota for 8 GPUs of H100 only, and no pool of that type has room for the gang now; "
    )
    assert "0 A100 GPUs in use + 8 requested > nominal quota 0 for A100" in decision.message


def test_a_job_asking_for_a_type_without_quota_waits(decide):
    quotas = (QueueQuota("hopper", {"H100": 8}),)
    decision = decide(snapshot_of(A100, H100, quotas=quotas), a_job(queue="hopper", gpu="A100"))["ns/job"]
    assert decision.reason is Reason.QUOTA_EXCEEDED
    assert decision.message == "queue hopper: 0 A100 GPUs in use + 8 requested > nominal quota 0 for A100"


def test_borrowing_a_type_from_the_cohort(decide):
    quotas = (QueueQuota("hopper", {"H100": 8}, "research"), QueueQuota("ampere", {"A100": 8}, "research"))
    decision = decide(snapshot_of(A100, H100, quotas=quotas), a_job(queue="hopper"))["ns/job"]
    assert decision.placement.pool == "a100-pool"  # ampere lends its unused A100s
    # Two jobs: one borrows the cohort's 8 A100s, the other uses hopper's own H100s.
    decisions = decide(
        snapshot_of(A100, H100, quotas=quotas), a_job("ns/j1", queue="hopper"), a_job("ns/j2", queue="hopper", created=1)
    )
    assert sorted(d.placement.pool for d in decisions.values()) == ["a100-pool", "h100-pool"]


def test_a_borrowing_limit_of_zero_keeps_the_job_on_its_own_type(decide):
    quotas = (QueueQuota("hopper", {"H100": 8}, "research", 0), QueueQuota("ampere", {"A100": 8}, "research"))
    decision = decide(snapshot_of(A100, H100, quotas=quotas), a_job(queue="hopper"))["ns/job"]
    assert decision.placement.pool == "h100-pool"


def test_star_quota_counts_for_types_not_named(decide):
    l4 = a_pool("l4-pool", gpu="L4", nodes=2, usd=0.1)
    quotas = (QueueQuota("q", {"A100": 8, "*": 4}),)
    snapshot = snapshot_of(A100, H100, l4, quotas=quotas)
    # 8 GPUs: the `*` quota (4) takes neither L4 nor H100; the A100 quota does.
    assert decide(snapshot, a_job(queue="q"))["ns/job"].placement.pool == "a100-pool"
    # 4 GPUs: the cheapest pool, L4, under `*`.
    assert decide(snapshot, a_job(queue="q", gpus=4))["ns/job"].placement.pool == "l4-pool"
    h100 = decide(snapshot, a_job(queue="q", gpu="H100"))["ns/job"]
    assert h100.message == "queue q: 0 GPUs in use + 8 H100 requested > nominal quota 4 for any GPU type"


def test_cohort_reclaims_only_the_type_a_queue_borrows(decide):
    """hopper borrows A100s (over its A100 quota of 0) but uses H100s within its own: ampere may
    preempt it on the A100 pool, never on the H100 pool."""
    a100 = a_pool("a100-pool", gpu="A100", nodes=1, usd=2.0)
    h100 = a_pool("h100-pool", gpu="H100", nodes=1, usd=8.0)
    quotas = (QueueQuota("hopper", {"H100": 8}, "research"), QueueQuota("ampere", {"A100": 8, "H100": 8}, "research"))
    allocations = (
        held("ns/borrowed", "a100-pool", queue="hopper", at=1),
        held("ns/own", "h100-pool", queue="hopper", at=2),
    )
    snapshot = snapshot_of(a100, h100, quotas=quotas, allocations=allocations)
    on_a100 = decide(snapshot, a_job(queue="ampere", gpu="A100", priority=5))["ns/job"]
    assert on_a100.action is Action.PREEMPT and on_a100.victims == ("ns/borrowed",)
    on_h100 = decide(snapshot, a_job(queue="ampere", gpu="H100", priority=5))["ns/job"]
    assert on_h100.action is Action.WAIT


def test_local_search_does_not_move_a_job_to_a_type_without_quota():
    """A cheaper pool of another type frees up in local search: the move must respect the quota."""
    quotas = (QueueQuota("hopper", {"H100": 8}),)
    snapshot = snapshot_of(A100, H100, quotas=quotas)
    jobs = [a_job("ns/h", queue="hopper"), a_job("ns/free", queue="other", created=1)]
    result = schedule_cycle(snapshot, jobs, exact_budget_s=0)
    placed = {d.job_key: d.placement.pool for d in result.decisions if d.placement is not None}
    assert placed["ns/h"] == "h100-pool"
