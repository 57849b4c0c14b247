"""`transferctl get|describe|logs|cost|cancel|suspend|resume`: a TransferJob's life on a cluster,
as the user of the current kubeconfig context."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob
from transfer_operator.ctl import views
from transfer_operator.ctl.kube import CtlError, JobClient

console = Console(width=None if sys.stdout.isatty() else 200)
F = TypeVar("F", bound=Callable[..., Any])
FOLLOW_POLL_S = 2.0


def cluster_options(func: F) -> F:
    func = click.option("--context", default=None, help="kubeconfig context (default: the current one).")(
        func
    )
    func = click.option(
        "-n", "--namespace", default=None, help="Namespace (default: the context's, else default)."
    )(func)
    return func


def _client(context: str | None) -> JobClient:
    try:
        return JobClient(context)
    except CtlError as error:
        raise click.ClickException(str(error)) from None


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except CtlError as error:
        raise click.ClickException(str(error)) from None


def _now() -> datetime:
    return datetime.now(UTC)


def _table(columns: tuple[str, ...] | list[str], rows: list[list[str]], title: str | None = None) -> Table:
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


@click.command("get")
@click.argument("job", required=False)
@cluster_options
@click.option("-A", "--all-namespaces", is_flag=True, help="Jobs of every namespace.")
@click.option(
    "-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table", show_default=True
)
@click.option(
    "-w", "--watch", is_flag=True, help="After the table, print a row whenever a job changes phase."
)
def get(
    job: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    output: str,
    watch: bool,
) -> None:
    """TransferJobs: phase, pool, cluster, cost and budget used, like `kubectl get` (-o wide: region,
    GPUs, price, attempts, RayJob, message)."""
    client = _client(context)

    def show() -> None:
        ns = None if all_namespaces and job is None else namespace or client.default_namespace()
        jobs = [client.job(ns or "default", job)] if job else client.jobs(ns)
        if output in ("json", "yaml"):
            document: Any = jobs[0] if job else {"apiVersion": "v1", "kind": "List", "items": jobs}
            click.echo(
                json.dumps(document, indent=2) if output == "json" else yaml.safe_dump(document), nl=False
            )
            return
        if not jobs:
            click.echo(
                f"No TransferJobs in {'any namespace' if ns is None else f'namespace {ns}'}.", err=True
            )
            return
        wide, with_ns = output == "wide", ns is None
        columns = views.WIDE_COLUMNS if wide else views.COLUMNS
        now = _now()
        jobs.sort(key=lambda j: (j["metadata"].get("namespace", ""), j["metadata"]["name"]))
        rows = [views.job_row(j, now, wide=wide, namespace=with_ns) for j in jobs]
        console.print(_table(("NAMESPACE", *columns) if with_ns else columns, rows))
        if watch:
            _watch(client, ns, job, wide=wide, with_ns=with_ns, seen={_change_key(j): j for j in jobs})

    _run(show)


def _change_key(job: dict[str, Any]) -> tuple[str, str, str, str]:
    status = job.get("status") or {}
    meta = job["metadata"]
    return (
        meta.get("namespace", ""),
        meta["name"],
        status.get("phase") or "",
        status.get("rayJobName") or "",
    )


def _watch(
    client: JobClient,
    namespace: str | None,
    name: str | None,
    *,
    wide: bool,
    with_ns: bool,
    seen: dict[Any, Any],
) -> None:
    """Poll (a watch would need a longer-lived connection than a terminal command is worth)."""
    while True:
        time.sleep(FOLLOW_POLL_S)
        jobs = [client.job(namespace or "default", name)] if name else client.jobs(namespace)
        for job in jobs:
            key = _change_key(job)
            if key not in seen:
                seen[key] = job
                row = views.job_row(job, _now(), wide=wide, namespace=with_ns)
                click.echo("  ".join(row))


@click.command("describe")
@click.argument("job")
@cluster_options
@click.option("--options", "limit", default=5, show_default=True, help="Runner-up pools to list.")
def describe(job: str, context: str | None, namespace: str | None, limit: int) -> None:
    """One TransferJob: placement and why, runner-up pools, cost so far against the budget,
    conditions and events (of the TransferJob and its RayJob)."""
    client = _client(context)
    _run(lambda: _describe(client, namespace or client.default_namespace(), job, limit))


def _describe(client: JobClient, namespace: str, name: str, limit: int) -> None:
    obj = client.job(namespace, name)
    now = _now()
    status = obj.get("status") or {}
    placement = status.get("placement") or {}
    budget = views.budget_of(obj)
    console.print(Text.assemble(("Name: ", "bold"), f"{namespace}/{name}"))
    console.print(
        Text.assemble(
            ("Phase: ", "bold"), status.get("phase") or "Pending", f"  {status.get('message') or ''}"
        )
    )
    spend = f"{views.money(float(status.get('costSoFar') or 0))} so far"
    if budget is not None:
        spend += f" of a {views.money(budget)} budget ({views.budget_text(obj).split('%')[0]}%)"
    console.print(
        Text.assemble(("Cost: ", "bold"), spend, f", over {status.get('attempts') or 0} attempt(s)")
    )
    if placement:
        where = (
            f"{placement['pool']} in {placement['region']}"
            f"{' on cluster ' + placement['cluster'] if placement.get('cluster') else ''}: "
            f"{placement['gpus']}x {placement['gpuType']} {placement['priceClass']} at "
            f"${placement['usdPerHour']:.2f}/h; RayJob {status.get('rayJobName') or '-'}"
        )
        console.print(Text.assemble(("Placement: ", "bold"), where))
    current = (placement["pool"], placement["priceClass"]) if placement else None
    _print_why(client, obj, current, limit)
    rows = views.conditions(obj, now)
    if rows:
        console.print(_table(("CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"), rows, title="Conditions"))
    events = client.events(namespace, "TransferJob", name)
    if status.get("rayJobName") and not placement.get("cluster"):
        events += client.events(namespace, "RayJob", status["rayJobName"])
    if events:
        console.print(
            _table(("AGE", "TYPE", "REASON", "MESSAGE"), views.event_rows(events, now), title="Events")
        )


def _print_why(client: JobClient, obj: dict[str, Any], current: tuple[str, str] | None, limit: int) -> None:
    """The scheduler's view, from the cluster's GPUPools and TransferJobs: the plan's decision for
    this job as if it were queued now (the others keep what they hold) and its best options."""
    from transfer_operator.cli import print_explanation
    from transfer_operator.ctl.placement import explain

    try:
        target = parse_transferjob(obj)
    except InvalidSpec as error:
        console.print(Text(f"Why: its spec is invalid: {error}"))
        return
    jobs, pools = [], []
    for other in client.jobs(None):
        try:
            jobs.append(parse_transferjob(other))
        except InvalidSpec:
            continue
    for pool in client.pools():
        try:
            pools.append(parse_gpupool(pool))
        except InvalidSpec:
            continue
    finished = target.status.phase.is_terminal
    explanation = explain(target, jobs, pools, OperatorConfig(), limit, requeue=not finished)
    if explanation.decision is None:
        console.print(Text(f"Why: not queued (phase {target.status.phase.value})"))
        return
    title = "Options if it were queued now (runner-ups to the current pool)" if current else "Best options"
    print_explanation(explanation, title, current=current)


@click.command("logs")
@click.argument("job")
@cluster_options
@click.option("-f", "--follow", is_flag=True, help="Keep streaming, across the job's next attempts.")
def logs(job: str, context: str | None, namespace: str | None, follow: bool) -> None:
    """The log of the job's RayJob submitter (`ray job submit`, which follows the Ray driver's
    output), read through the API server from the cluster the job runs on."""
    client = _client(context)
    _run(lambda: _logs(client, namespace or client.default_namespace(), job, follow))


def _logs(client: JobClient, namespace: str, name: str, follow: bool) -> None:
    shown: set[str] = set()
    while True:
        status = client.job(namespace, name).get("status") or {}
        rayjob = status.get("rayJobName")
        phase = status.get("phase") or "Pending"
        pods = []
        if rayjob:
            where = client.for_cluster((status.get("placement") or {}).get("cluster"))
            pods = [
                p
                for p in where.submitter_pods(namespace, rayjob)
                if (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")
            ]
            for pod in pods:
                pod_name = pod["metadata"]["name"]
                if pod_name in shown:
                    continue
                shown.add(pod_name)
                click.echo(f"==> {rayjob}: pod {pod_name} <==", err=True)
                for chunk in where.logs(namespace, pod_name, follow=follow):
                    click.echo(chunk, nl=False)
        if not follow:
            if not pods:
                raise CtlError(f"{namespace}/{name} has no submitter log yet (phase {phase})")
            return
        if phase in ("Succeeded", "Failed"):
            return
        time.sleep(FOLLOW_POLL_S)


@click.command("cost")
@click.option("--by", type=click.Choice(views.COST_KEYS), default="namespace", show_default=True)
@click.option(
    "--since", "since_text", default=None, help="Only jobs created or admitted since: 2h, 7d, RFC 3339."
)
@cluster_options
@click.option("--plot", is_flag=True, help="Draw a bar per line.")
def cost(by: str, since_text: str | None, context: str | None, namespace: str | None, plot: bool) -> None:
    """Spend of the TransferJobs (their status.costSoFar), grouped by namespace, queue or pool
    (every namespace unless -n)."""
    client = _client(context)

    def show() -> None:
        now = _now()
        try:
            after = views.parse_since(since_text, now) if since_text else None
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        lines = views.cost_by(client.jobs(namespace), by, after)
        total = sum(line.cost for line in lines)
        largest = max((line.cost for line in lines), default=0.0)
        columns = [by.upper(), "JOBS", "RUNNING", "COST", "SHARE", *([""] if plot else [])]
        rows = [
            [
                line.key,
                str(line.jobs),
                str(line.running),
                views.money(line.cost),
                f"{100 * line.cost / total:.0f}%" if total else "-",
                *([views.bar(line.cost, largest)] if plot else []),
            ]
            for line in lines
        ]
        rows.append(
            [
                "total",
                str(sum(x.jobs for x in lines)),
                str(sum(x.running for x in lines)),
                views.money(total),
                "",
            ]
        )
        if plot:
            rows[-1].append("")
        window = f" since {after:%Y-%m-%d %H:%M} UTC" if after else ""
        console.print(_table(columns, rows, title=f"Cost by {by}{window}"))

    _run(show)


def _set_suspend(suspend: bool) -> click.Command:
    verb = "suspend" if suspend else "resume"

    @cluster_options
    @click.argument("job")
    def command(job: str, context: str | None, namespace: str | None) -> None:
        client = _client(context)
        ns = namespace or client.default_namespace()
        _run(lambda: client.set_suspend(ns, job, suspend))
        done = "suspended: its RayJob stops, its checkpoint stays" if suspend else "resumed: queued again"
        click.echo(f"transferjob {ns}/{job} {done}")

    command.__doc__ = (
        "Set spec.suspend: the RayJob is deleted and the checkpoint kept."
        if suspend
        else "Clear spec.suspend: the job is queued again and resumes from its checkpoint."
    )
    return click.command(verb)(command)


suspend = _set_suspend(True)
resume = _set_suspend(False)


@click.command("cancel")
@click.argument("job")
@cluster_options
def cancel(job: str, context: str | None, namespace: str | None) -> None:
    """Delete the TransferJob: its RayJob and Ray cluster go with it (checkpoints stay in storage).
    To stop it and keep it, `transferctl suspend`."""
    client = _client(context)
    ns = namespace or client.default_namespace()

    def run() -> None:
        checkpoint = (client.job(ns, job).get("status") or {}).get("lastCheckpoint")
        client.delete(ns, job)
        kept = f"; checkpoints stay in {checkpoint}" if checkpoint else ""
        click.echo(f"transferjob {ns}/{job} cancelled (deleted){kept}")

    _run(run)


COMMANDS = (get, describe, logs, cost, cancel, suspend, resume)
