"""Operator start-up and shut-down: settings, the shared context, metrics, the scheduling task."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import kopf

from transfer_operator import metrics
from transfer_operator.api.config import OperatorConfig
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.kube import Kube, load_client_config
from transfer_operator.handlers.scheduling import scheduling_loop

log = logging.getLogger(__name__)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    config_path = os.environ.get("TRANSFER_OPERATOR_CONFIG")
    config = OperatorConfig.load(Path(config_path) if config_path else None)
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    ctx = Ctx(
        kube=Kube(load_client_config()),
        config=config,
        identity=identity,
        lease_namespace=os.environ.get("POD_NAMESPACE", "default"),
    )
    memo.ctx = ctx
    memo.stop_watching = threading.Event()
    ctx.index.connect(ctx.kube, nodes=config.node_failover, pod_namespaces=config.job_namespaces)
    ctx.index.start(memo.stop_watching)
    port = int(os.environ.get("TRANSFER_METRICS_PORT", "0"))
    metrics.initialize()
    if port:
        metrics.serve(port)
        log.info("metrics on :%d/metrics", port)
    memo.stop_scheduling = asyncio.Event()
    memo.scheduling_task = asyncio.create_task(scheduling_loop(ctx, memo.stop_scheduling))


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    watching = getattr(memo, "stop_watching", None)
    if watching is not None:
        watching.set()  # the watch threads are daemons; they end with their current stream
    event = getattr(memo, "stop_scheduling", None)
    task = getattr(memo, "scheduling_task", None)
    if event is not None and task is not None:
        event.set()
        await task
