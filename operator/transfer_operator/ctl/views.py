"""What `transferctl get|describe|cost` print, from TransferJob objects as the API returns them.
Pure: no client, the clock is an argument."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COLUMNS = ("NAME", "PHASE", "POOL", "CLUSTER", "COST", "BUDGET", "PROGRESS", "RUN TIME", "AGE")
WIDE_COLUMNS = (*COLUMNS, "REGION", "GPUS", "PRICE", "$/H", "ATTEMPTS", "RAYJOB", "MESSAGE")
COST_KEYS = ("namespace", "queue", "pool")
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """`90m`, `2h`, `7d` before now, or an RFC 3339 time."""
    match = _SINCE.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        parsed = parse_time(text.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"--since {text!r}: give a duration like 90m, 2h or 7d, or an RFC 3339 time")
    return parsed


def duration(seconds: float) -> str:
    """kubectl's style: 45s, 12m, 3h, 5d (two units while short)."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m" if seconds < 36000 else f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def since(value: str | None, now: datetime) -> str:
    start = parse_time(value)
    return duration((now - start).total_seconds()) if start else "-"


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _status(job: dict[str, Any]) -> dict[str, Any]:
    return job.get("status") or {}


def _placement(job: dict[str, Any]) -> dict[str, Any]:
    return _status(job).get("placement") or {}


def budget_of(job: dict[str, Any]) -> float | None:
    budget = (job.get("spec") or {}).get("budget") or {}
    return float(budget["maxDollars"]) if budget.get("maxDollars") is not None else None


def budget_text(job: dict[str, Any]) -> str:
    limit = budget_of(job)
    if limit is None:
        return "-"
    return f"{100 * float(_status(job).get('costSoFar') or 0) / limit:.0f}% of {money(limit)}"


def run_time(job: dict[str, Any], now: datetime) -> str:
    """Since the current attempt was admitted (finished jobs: "-", their cost says it all)."""
    status = _status(job)
    if status.get("phase") not in ("Admitted", "Running"):
        return "-"
    return since(status.get("admittedAt"), now)


def progress(job: dict[str, Any], now: datetime) -> str:
    """How far the job is: done (100% and the trainer's step count) once Succeeded; while
    Running, an estimate, `~N%`: the current attempt's run time over spec.resources.estimatedHours
    (capped at 99%; the trainer's own step count is known to the operator only at the end)."""
    status = _status(job)
    phase = status.get("phase")
    if phase == "Succeeded":
        steps = (status.get("metrics") or {}).get("steps")
        return f"100% ({steps} steps)" if steps else "100%"
    hours = ((job.get("spec") or {}).get("resources") or {}).get("estimatedHours")
    start = parse_time(status.get("admittedAt"))
    if phase != "Running" or start is None or not hours:
        return "-"
    fraction = (now - start).total_seconds() / (float(hours) * 3600)
    return f"~{min(99, max(0, int(100 * fraction)))}%"


def job_row(job: dict[str, Any], now: datetime, *, wide: bool = False, namespace: bool = False) -> list[str]:
    status, placement = _status(job), _placement(job)
    meta = job["metadata"]
    row = [
        meta["name"],
        status.get("phase") or "Pending",
        placement.get("pool") or "-",
        placement.get("cluster") or ("-" if not placement else "local"),
        money(float(status.get("costSoFar") or 0)),
        budget_text(job),
        progress(job, now),
        run_time(job, now),
        since(meta.get("creationTimestamp"), now),
    ]
    if wide:
        gpus = f"{placement['gpus']}x {placement['gpuType']}" if placement else "-"
        row += [
            placement.get("region") or "-",
            gpus,
            placement.get("priceClass") or "-",
            f"{placement['usdPerHour']:.2f}" if placement.get("usdPerHour") is not None else "-",
            str(status.get("attempts") or 0),
            status.get("rayJobName") or "-",
            status.get("message") or "",
        ]
    return [meta.get("namespace") or "default", *row] if namespace else row


def conditions(job: dict[str, Any], now: datetime) -> list[list[str]]:
    return [
        [
            c["type"],
            c["status"],
            c.get("reason", ""),
            since(c.get("lastTransitionTime"), now),
            c.get("message", ""),
        ]
        for c in _status(job).get("conditions") or []
    ]


def event_rows(events: list[dict[str, Any]], now: datetime) -> list[list[str]]:
    def when(event: dict[str, Any]) -> str:
        return event.get("lastTimestamp") or event.get("eventTime") or event["metadata"]["creationTimestamp"]

    rows = []
    for event in sorted(events, key=when):
        count = int(event.get("count") or 1)
        age = since(when(event), now) + (f" (x{count})" if count > 1 else "")
        rows.append([age, event.get("type", ""), event.get("reason", ""), event.get("message", "")])
    return rows


@dataclass(frozen=True, slots=True)
class CostLine:
    key: str
    jobs: int
    running: int
    cost: float


def cost_key(job: dict[str, Any], by: str) -> str:
    if by == "namespace":
        return str(job["metadata"].get("namespace") or "default")
    if by == "queue":
        return str((job.get("spec") or {}).get("queue") or "default")
    if by == "pool":
        return str(_placement(job).get("pool") or "(never placed)")
    raise ValueError(f"--by {by!r}: one of {', '.join(COST_KEYS)}")


def started_at(job: dict[str, Any]) -> datetime | None:
    status = _status(job)
    return parse_time(status.get("admittedAt")) or parse_time(job["metadata"].get("creationTimestamp"))


def cost_by(jobs: list[dict[str, Any]], by: str, after: datetime | None = None) -> list[CostLine]:
    """What the jobs spent (status.costSoFar, every attempt), grouped, most first. `after`: only
    jobs created or admitted since then (a status holds a total, not a history)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for job in jobs:
        start = started_at(job)
        if after is not None and (start is None or start < after):
            continue
        line = totals[cost_key(job, by)]
        line[0] += 1
        line[1] += _status(job).get("phase") in ("Admitted", "Running")
        line[2] += float(_status(job).get("costSoFar") or 0)
    lines = [CostLine(key, int(v[0]), int(v[1]), v[2]) for key, v in totals.items()]
    return sorted(lines, key=lambda line: (-line.cost, line.key))


def bar(value: float, largest: float, width: int = 30) -> str:
    if largest <= 0:
        return ""
    cells = value / largest * width
    return "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
