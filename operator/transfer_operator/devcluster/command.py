"""`transferctl dev-cluster up|down|status`: the local control plane from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster import fleet as fleet_mod
from transfer_operator.devcluster import operator as operator_mod
from transfer_operator.devcluster.nodes import DEFAULT_MAX_NODES_PER_POOL, load_pools

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=cluster_mod.DEFAULT_STATE_DIR,
    show_default=True,
    help="Where certificates, kubeconfig, etcd data, logs and state.json live.",
)


@click.group("dev-cluster")
def dev_cluster() -> None:
    """A local Kubernetes control plane with fake (kwok) GPU nodes and KubeRay."""


@dev_cluster.command()
@click.option(
    "--pools",
    "pools_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file with GPUPool objects; each pool becomes kwok GPU nodes.",
)
@click.option(
    "--max-nodes-per-pool",
    type=int,
    default=DEFAULT_MAX_NODES_PER_POOL,
    show_default=True,
    help="Cap on fake nodes per pool (pools may declare many more).",
)
@click.option("--no-kuberay", is_flag=True, help="Do not install KubeRay.")
@click.option(
    "--clusters",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Worker clusters besides the management one (pools with spec.cluster go to theirs).",
)
@click.option("--no-s3", is_flag=True, help="Do not start the S3 store (SeaweedFS).")
@click.option(
    "--provisioner",
    type=click.Choice(["none", "karpenter"]),
    default="none",
    show_default=True,
    help="A node provisioner for elastic pools (spec.scaling): karpenter runs Karpenter's kwok provider, "
    "which turns NodeClaims into kwok nodes (built on first use, ~5 min cold).",
)
@click.option(
    "--with-operator",
    is_flag=True,
    help="Also install the chart (no pod) and run the operator here with its ServiceAccount token.",
)
@click.option("--timeout", "timeout_s", type=float, default=180.0, show_default=True)
@state_dir_option
def up(
    pools_file: Path | None,
    max_nodes_per_pool: int,
    no_kuberay: bool,
    clusters: int,
    no_s3: bool,
    provisioner: str,
    with_operator: bool,
    timeout_s: float,
    state_dir: Path,
) -> None:
    """Start the management cluster, its workers and the S3 store (building binaries if needed)."""
    pools = load_pools(pools_file) if pools_file else []
    if fleet_mod.status(state_dir)["running"]:
        click.echo(f"Already running in {state_dir} (run `down` first to change pools).", err=True)
    start_s = time.monotonic()
    try:
        fleet = fleet_mod.up(
            state_dir,
            pools,
            clusters=clusters,
            s3=not no_s3,
            max_nodes_per_pool=max_nodes_per_pool,
            kuberay=not no_kuberay,
            timeout_s=timeout_s,
            echo=lambda message: click.echo(message, err=True),
            provisioner=None if provisioner == "none" else provisioner,
        )
        if with_operator:
            click.echo("operator ...", err=True)
            metrics_port = operator_mod.start_operator(fleet.management)
    except cluster_mod.ClusterError as error:
        raise click.ClickException(str(error)) from None
    cluster = fleet.management
    click.echo(f"Cluster up in {time.monotonic() - start_s:.1f}s: {cluster.server}")
    if cluster.nodes:
        click.echo(f"Fake GPU nodes: {', '.join(cluster.nodes)}")
    for name, worker in fleet.workers.items():
        nodes = f" ({', '.join(worker.nodes)})" if worker.nodes else ""
        click.echo(f"Worker cluster {name}: {worker.server}{nodes}; TransferCluster {name} registered")
    if provisioner == "karpenter":
        click.echo(
            "Karpenter (kwok provider): NodeClaims become kwok nodes; KWOKNodeClass `default` for "
            "spec.scaling.nodeClassRef; log logs/karpenter.log"
        )
    if fleet.store is not None:
        click.echo(
            f"S3 (SeaweedFS): {fleet.store.endpoint}, bucket {fleet_mod.STORAGE_BUCKET}; keys in Secret "
            f"{fleet_mod.STORAGE_SECRET} ({', '.join(fleet_mod.STORAGE_NAMESPACES)}) of every cluster"
        )
    if with_operator:
        click.echo(
            f"Operator: running as ServiceAccount {operator_mod.NAMESPACE}/{operator_mod.SERVICE_ACCOUNT}, "
            f"metrics on http://127.0.0.1:{metrics_port}/metrics"
        )
    click.echo(
        "RayJobs run simulated Ray jobs (no Ray runs on kwok nodes): see docs/controlplane.md#simulated-ray-jobs"
    )
    click.echo(f"Logs: {cluster.state_dir / 'logs'}")
    click.echo(f"Kubeconfig: {cluster.kubeconfig}")
    click.echo(f"export KUBECONFIG={cluster.kubeconfig}")


@dev_cluster.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop every process of the cluster."""
    if fleet_mod.down(state_dir):
        click.echo("Cluster stopped.")
    else:
        click.echo(f"No cluster running in {state_dir}.")


@dev_cluster.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(state_dir: Path, as_json: bool) -> None:
    """Show whether the cluster and each component are running."""
    info = fleet_mod.status(state_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if not info["components"]:
        click.echo(f"No cluster in {state_dir}.")
        raise SystemExit(1)
    click.echo(f"server: {info['server']} ({'ready' if info['ready'] else 'NOT ready'})")
    click.echo(f"kubeconfig: {info['kubeconfig']}")
    for name, alive in info["components"].items():
        click.echo(f"  {name:<24} {'running' if alive else 'stopped'} (pid {info['pids'][name]})")
    for worker, worker_info in info["workers"].items():
        state = "running" if worker_info["running"] else "NOT running"
        click.echo(f"worker {worker}: {worker_info.get('server', '-')} ({state})")
    store = info["objectstore"]
    if store is not None:
        click.echo(
            f"s3: {store['endpoint']} ({'running' if store['running'] else 'stopped'}, pid {store['pid']})"
        )
    if not info["running"]:
        raise SystemExit(1)
