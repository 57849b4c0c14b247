"""transferctl: run, predict, validate, plan, explain, render, crds, generate, operator, dev-cluster,
and a job's life on a cluster: get, describe, logs, cost, cancel, suspend, resume."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from transfer_operator.api import loading
from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.crd import render_crds_yaml
from transfer_operator.api.enums import Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.api.queues import QueueRules, apply_queue_rules, namespace_labels_or_name
from transfer_operator.api.validation import InvalidSpec
from transfer_operator.ctl.placement import Explanation, as_queued, fit_text
from transfer_operator.ctl.placement import explain as explain_placement
from transfer_operator.engine.rayjob import PoolPin, render_rayjob
from transfer_operator.scheduler import Action, Decision, schedule
from transfer_operator.scheduler.snapshot import snapshot_of
from transfer_operator.scheduler.types import Fit

console = Console(width=None if sys.stdout.isatty() else 160)
REPO_ROOT = Path(__file__).resolve().parents[2]


def load_objects(paths: Iterable[Path]) -> tuple[list[TransferJob], list[GPUPool], list[str]]:
    """TransferJobs and GPUPools from files or folders, with the problems of the bad ones
    (read with the safe loader: see api/loading.py)."""
    loaded = loading.load_objects(list(paths))
    return loaded.jobs, loaded.pools, loaded.problems


def say(marker: str, style: str, text: str) -> None:
    """One line whose user-given parts are never read as rich markup."""
    console.print(Text.assemble((marker, style), " ", text), highlight=False, soft_wrap=True)


@click.group()
def main() -> None:
    """transfer-operator: fine-tune pre-trained models on Kubernetes, placed by cost."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--pools",
    "pool_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="GPUPools to check placement limits against.",
)
def validate(files: tuple[Path, ...], pool_files: tuple[Path, ...]) -> None:
    """Check TransferJobs, GPUPools, TransferQueues and TransferPriorityClasses: schema,
    cross-field rules; with --pools, whether any pool could ever run each job; with queues among
    the files, whether each job may use its queue and priority. Exit 1 with the reasons."""
    loaded = loading.load_objects([*files, *pool_files])
    jobs, pools, problems = loaded.jobs, loaded.pools, loaded.problems
    if loaded.queues:
        refused = apply_queue_rules(jobs, loaded.rules, cli_namespace_labels).refused
        problems += [f"TransferJob/{key}: {message}" for key, message in refused.items()]
    if pools:
        snapshot, _ = snapshot_of(pools, [], OperatorConfig())
        from transfer_operator.scheduler.from_api import job_request_of
        from transfer_operator.scheduler.schedule import estimate_options

        for job in jobs:
            static = estimate_options(job_request_of(job), snapshot.pools).static_reason
            if static is not None:
                problems.append(f"TransferJob/{job.metadata.name}: {static[1]}")
    if problems:
        for problem in problems:
            say("✗", "red", problem)
        sys.exit(1)
    counts = f"{len(jobs)} TransferJob(s), {len(pools)} GPUPool(s)"
    if loaded.queues or loaded.classes:
        counts += f", {len(loaded.queues)} TransferQueue(s), {len(loaded.classes)} TransferPriorityClass(es)"
    console.print(f"[green]✓[/green] {counts} valid")


def cli_namespace_labels(namespace: str) -> dict[str, str]:
    """Files carry no Namespace objects: a selector can match a namespace by its name label only."""
    return namespace_labels_or_name(namespace, None)


def plan_decisions(
    jobs: list[TransferJob],
    pools: list[GPUPool],
    config: OperatorConfig,
    rules: QueueRules | None = None,
) -> list[Decision]:
    """The cycle's decisions for these objects; a job its queue rules refuse waits with InvalidSpec."""
    rules = rules or QueueRules()
    applied = apply_queue_rules(jobs, rules, cli_namespace_labels)
    snapshot, pending = snapshot_of(pools, applied.jobs, config, queues=rules.queues)
    refused = [
        Decision(key, Action.WAIT, Fit.NO_FIT, Reason.INVALID_SPEC, message) for key, message in applied.refused.items()
    ]
    return refused + schedule(snapshot, pending)


def print_plan(decisions: list[Decision]) -> None:
    table = Table(title="Placement plan", show_lines=False)
    for column in (
        "job",
        "decision",
        "pool",
        "region",
        "GPU",
        "price class",
        "$/h",
        "est. hours",
        "est. cost",
    ):
        table.add_column(column, no_wrap=column != "decision")
    waiting: list[Decision] = []
    for decision in decisions:
        placement = decision.placement
        if placement is None:
            table.add_row(Text(decision.job_key), decision.reason.value, "-", "-", "-", "-", "-", "-", "-")
            waiting.append(decision)
            continue
        table.add_row(
            Text(decision.job_key),
            decision.action.value,
            Text(placement.pool),
            Text(placement.region),
            Text(f"{placement.gpus}x {placement.gpu_type}"),
            placement.price_class.value,
            f"{placement.usd_per_hour:.2f}",
            f"{placement.expected_hours:.2f}",
            f"{placement.expected_cost_usd:.2f}",
        )
        if decision.action is not Action.ADMIT:
            waiting.append(decision)
    console.print(table)
    for decision in waiting:
        console.print(
            Text.assemble((decision.job_key, "yellow"), f" waits: {decision.message}"), highlight=False
        )


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--pools", "pool_files", multiple=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, path_type=Path),
    help="Operator config (queues, utilization policy).",
)
def plan(files: tuple[Path, ...], pool_files: tuple[Path, ...], config_file: Path | None) -> None:
    """What-if: where each job would run, at what price, and why a job would wait (TransferQueues
    and TransferPriorityClasses among the files apply as the operator applies them)."""
    loaded = loading.load_objects([*files, *pool_files])
    jobs, pools, problems = loaded.jobs, loaded.pools, loaded.problems
    for problem in problems:
        say("skipped", "red", problem)
    if not pools:
        raise click.UsageError("no GPUPool found: pass --pools POOLS.yaml")
    try:
        config = OperatorConfig.load(config_file)
    except (loading.LoadError, InvalidSpec) as error:
        say("✗", "red", f"{config_file}: {error}" if isinstance(error, InvalidSpec) else str(error))
        sys.exit(1)
    print_plan(plan_decisions(jobs, pools, config, loaded.rules))


@main.command()
@click.argument("job_name")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--pools", "pool_files", multiple=True, type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path))
@click.option("--options", "limit", default=5, show_default=True, help="Options to list.")
def explain(
    job_name: str, files: tuple[Path, ...], pool_files: tuple[Path, ...], config_file: Path | None, limit: int
) -> None:
    """Why JOB_NAME (name or namespace/name) runs where it would, or waits: the plan's decision
    and the job's best options, with how many GPUs must free up on each before it fits."""
    jobs, pools, problems = load_objects([*files, *pool_files])
    for problem in problems:
        console.print(f"[red]skipped[/red] {problem}", highlight=False)
    matches = [j for j in jobs if job_name in (j.key, j.metadata.name)]
    if len(matches) != 1:
        raise click.UsageError(f"{len(matches)} TransferJobs match {job_name!r}; name one as namespace/name")
    target = matches[0]
    explanation = explain_placement(target, jobs, pools, OperatorConfig.load(config_file), limit)
    if explanation.decision is None:
        console.print(f"{target.key} is not queued (phase {target.status.phase.value})", highlight=False)
        return
    print_explanation(explanation, f"Best options of {target.key} (after the plan's other admissions)")


def print_explanation(explanation: Explanation, title: str, current: tuple[str, str] | None = None) -> None:
    """The decision and the options table; `current`: (pool, price class) the job holds now."""
    decision = explanation.decision
    assert decision is not None
    console.print(
        Text(f"{explanation.job_key}: {decision.action.value} ({decision.reason.value}): {decision.message}")
    )
    if explanation.static is not None:
        if explanation.static[1] != decision.message:
            console.print(Text(f"no pool can ever take it: {explanation.static[1]}"))
        return
    table = Table(title=title)
    for column in ("pool", "region", "price class", "$/h", "est. cost", "free GPUs", "now"):
        table.add_column(column)
    for view in explanation.options:
        p = view.placement
        pool = f"{p.pool} (current)" if (p.pool, p.price_class.value) == current else p.pool
        money = f"{p.usd_per_hour:.2f}", f"{p.expected_cost_usd:.2f}"
        table.add_row(
            Text(pool), Text(p.region), p.price_class.value, *money, str(view.free_gpus), fit_text(view)
        )
    console.print(table)


@main.command()
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--pools", "pool_files", multiple=True, required=True, type=click.Path(exists=True, path_type=Path)
)
def render(file: Path, pool_files: tuple[Path, ...]) -> None:
    """Print the RayJob the operator would create for each TransferJob in FILE (whatever its
    status says: it is planned as if it were queued now, for its next attempt)."""
    jobs, pools, problems = load_objects([file, *pool_files])
    if problems:
        for problem in problems:
            say("✗", "red", problem)
        sys.exit(1)
    if not pools:
        say("✗", "red", "no GPUPool found: pass --pools POOLS.yaml")
        sys.exit(1)
    attempts = {job.key: job.status.attempts + 1 for job in jobs}
    jobs = [as_queued(job) for job in jobs]
    by_name = {pool.metadata.name: pool for pool in pools}
    manifests = []
    for job, decision in zip(jobs, _decisions_in_job_order(jobs, pools), strict=True):
        if decision.placement is None:
            click.echo(f"{job.key} would wait: {decision.message}", err=True)
            continue
        pool = by_name[decision.placement.pool]
        pin = PoolPin.of(pool.metadata.name, pool.spec)
        manifests.append(render_rayjob(job, pin, attempt=attempts[job.key], token_auth=True))
    click.echo(yaml.dump_all(manifests, Dumper=_NoAliasDumper, sort_keys=False), nl=False)


class _NoAliasDumper(yaml.SafeDumper):
    """Plain YAML for kubectl: never `&id001` anchors for repeated values."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _decisions_in_job_order(jobs: list[TransferJob], pools: list[GPUPool]) -> list[Decision]:
    by_key = {d.job_key: d for d in plan_decisions(jobs, pools, OperatorConfig())}
    return [by_key[job.key] for job in jobs]


@main.command()
def crds() -> None:
    """Print the CustomResourceDefinitions generated from the API models."""
    click.echo(render_crds_yaml(), nl=False)


def generated_files() -> dict[Path, str]:
    """Every committed file that is generated, with what it must contain."""
    from transfer_operator.api.chart_values import render_values_schema
    from transfer_operator.api.reference import render_api_reference
    from transfer_operator.dashboards import DASHBOARDS, render_dashboard
    from transfer_operator.metrics import render_metrics_reference

    crds = render_crds_yaml()
    files = {
        Path("manifests/crds/transfer.dev.yaml"): crds,
        Path("charts/transfer-operator/crds/transfer.dev.yaml"): crds,
        Path("docs/api.md"): render_api_reference(),
        Path("docs/metrics.md"): render_metrics_reference(),
        Path("charts/transfer-operator/values.schema.json"): render_values_schema(),
    }
    for name, build in DASHBOARDS.items():
        files[Path("charts/transfer-operator/dashboards") / name] = render_dashboard(build())
    return files


@main.command()
@click.option("--check", is_flag=True, help="Fail when a committed file differs instead of writing.")
def generate(check: bool) -> None:
    """Write (or --check) the generated files: CRDs, docs/api.md, the chart's values schema,
    Grafana dashboards."""
    stale = []
    for relative, content in generated_files().items():
        path = REPO_ROOT / relative
        if path.exists() and path.read_text() == content:
            continue
        if check:
            stale.append(str(relative))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        console.print(f"wrote {relative}")
    if stale:
        console.print(f"[red]stale generated files:[/red] {', '.join(stale)}; run `transferctl generate`")
        sys.exit(1)


@main.command()
@click.option("--priority", default=0, show_default=True, help="kopf peering priority of this replica.")
@click.option("--peering", default="transfer-operator", show_default=True, help="kopf peering name.")
@click.option("--standalone", is_flag=True, help="No peering (a single replica, or tests).")
@click.option("--namespace", "namespaces", multiple=True, help="Watch only these namespaces.")
@click.option("--liveness", default=None, help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
def operator(
    priority: int, peering: str, standalone: bool, namespaces: tuple[str, ...], liveness: str | None
) -> None:
    """Run the operator (kopf) against the current kubeconfig or in-cluster config."""
    import logging
    import os

    import kopf

    import transfer_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=False)  # kopf's one handler on the root logger (a second printed every line twice)
    logging.getLogger().setLevel(os.environ.get("TRANSFER_LOG_LEVEL", "INFO").upper())
    kopf.run(
        standalone=standalone,
        priority=priority,
        peering_name=None if standalone else peering,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )


@main.command()
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--runs-dir", default=Path("runs"), type=click.Path(path_type=Path), show_default=True)
@click.option("--cpus", type=int, default=None, help="CPUs for the local Ray (default: all).")
@click.option("--fresh", is_flag=True, help="Ignore an existing checkpoint and start over.")
def run(file: Path, runs_dir: Path, cpus: int | None, fresh: bool) -> None:
    """Run a TransferJob here, on an embedded Ray: the default without a cluster."""
    jobs, _, problems = load_objects([file])
    if problems or not jobs:
        for problem in problems or [f"{file}: no TransferJob found"]:
            say("✗", "red", problem)
        sys.exit(1)
    root = runs_dir.expanduser().resolve()
    for job in jobs:
        # Names are DNS names (no "/" nor ".."), so this holds; checked again because it must.
        if not (root / job.metadata.name).resolve().is_relative_to(root):
            say("✗", "red", f"{job.metadata.name}: its run directory would be outside {root}")
            sys.exit(1)
    from transfer_trainers import SpecError
    from transfer_trainers.local import run_local, verdict

    failed = False
    for job in jobs:
        try:
            result = run_local(
                job.spec.to_wire(), job.metadata.name, runs_dir=runs_dir, num_cpus=cpus, resume=not fresh
            )
        except SpecError as error:  # refused before Ray starts, naming the field
            say("✗", "red", f"{file}: {error}")
            sys.exit(1)
        color = (
            "green" if result.status == "succeeded" else "yellow" if result.status == "interrupted" else "red"
        )
        say(result.status, color, verdict(result))
        failed |= result.status == "failed"
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("source")
@click.argument("texts", nargs=-1, required=True)
@click.option("--max-new-tokens", type=int, default=32, show_default=True, help="Causal LMs: answer length.")
def predict(source: str, texts: tuple[str, ...], max_new_tokens: int) -> None:
    """Answer TEXTS with a trained model: a run's model directory or a spec.output.uri (local or s3://)."""
    from transfer_trainers.predict import predict as answer

    try:
        answers = answer(source, list(texts), max_new_tokens=max_new_tokens)
    except (FileNotFoundError, OSError) as error:
        say("✗", "red", f"{source}: {error}")
        sys.exit(1)
    for text, reply in zip(texts, answers, strict=True):
        console.print(f"[bold]{text}[/bold]\n  → {reply}")


@main.command("dashboard-snapshot")
@click.option("--prometheus", "prometheus_url", required=True, help="e.g. http://127.0.0.1:9090")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("fleet-dashboard.png"),
    show_default=True,
)
@click.option("--window", "window_s", type=float, default=900, show_default=True, help="Seconds of history.")
def dashboard_snapshot(prometheus_url: str, out: Path, window_s: float) -> None:
    """Draw the fleet dashboard's panels to a PNG from a Prometheus's data."""
    from transfer_operator.snapshot import render_fleet_snapshot

    console.print(f"wrote {render_fleet_snapshot(prometheus_url, out, window_s=window_s)}")


def _attach_dev_cluster() -> None:
    try:
        from transfer_operator.devcluster.command import dev_cluster
    except ImportError:  # the dev tools need the operator extra (cryptography)
        return
    main.add_command(dev_cluster, "dev-cluster")


def _attach_cluster_commands() -> None:
    try:
        from transfer_operator.ctl.commands import COMMANDS
    except ImportError:  # they need the operator extra (the kubernetes client)
        return
    for command in COMMANDS:
        main.add_command(command)


_attach_dev_cluster()
_attach_cluster_commands()

if __name__ == "__main__":
    main()
