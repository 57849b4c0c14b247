"""A PNG of the fleet dashboard's panels, drawn with matplotlib from a Prometheus's answers,
so a reader sees what the dashboard shows without a Grafana."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from transfer_operator.dashboards import FLEET_PANELS, PanelSpec

LEGEND_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def query_range(
    prometheus_url: str, expr: str, start_s: float, end_s: float, step_s: float
) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start_s, "end": end_s, "step": step_s})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('error')}")
    return body["data"]["result"]


def _legend(template: str, labels: dict[str, str]) -> str:
    return LEGEND_FIELD.sub(lambda m: labels.get(m.group(1), ""), template) or "value"


def render_fleet_snapshot(prometheus_url: str, out: Path, window_s: float = 900, step_s: float = 5) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[PanelSpec] = list(FLEET_PANELS)
    columns = 3
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    end_s = time.time()
    start_s = end_s - window_s
    for index, panel in enumerate(panels):
        axis = axes[index // columns][index % columns]
        axis.set_title(panel.title, fontsize=10)
        plotted = 0
        for expr, legend in panel.exprs:
            for series in query_range(prometheus_url, expr, start_s, end_s, step_s):
                points = [
                    (float(t) - end_s, float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf")
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    axis.plot(xs, ys, label=_legend(legend, series["metric"]), linewidth=1.2)
                    plotted += 1
        if plotted:
            axis.legend(fontsize=7, loc="upper left")
        else:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel("seconds before now", fontsize=8)
        axis.tick_params(labelsize=7)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle("transfer-operator / fleet (from Prometheus)", fontsize=12)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out
