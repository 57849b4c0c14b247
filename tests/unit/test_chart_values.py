"""The chart's values: values.yaml obeys the model its schema is generated from, and `helm test`'s
check knows every metric family the operator defines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from pydantic import ValidationError

from transfer_operator import metrics
from transfer_operator.api.chart_values import ChartValues, render_values_schema
from transfer_operator.chartcheck import missing_families

CHART = Path(__file__).resolve().parents[2] / "charts" / "transfer-operator"


def test_values_yaml_obeys_the_model_and_the_schema_is_current() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ChartValues.model_validate(values)  # every key known (extra="forbid"), every value in range
    assert (CHART / "values.schema.json").read_text() == render_values_schema(), "run `transferctl generate`"


@pytest.mark.parametrize(
    "bad",
    [
        {"replicas": -1},
        {"image": {"digest": "latest"}},
        {"imagee": {}},
        {"config": {"queues": [{"name": "Q"}]}},
    ],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChartValues.model_validate(bad)


def test_the_check_finds_every_family_in_a_real_exposition_and_misses_none() -> None:
    metrics.initialize()
    exposition = generate_latest(REGISTRY).decode()
    assert missing_families(exposition) == []
    without = "\n".join(line for line in exposition.splitlines() if "transfer_jobs " not in line)
    assert missing_families(without) == ["transfer_jobs"]
