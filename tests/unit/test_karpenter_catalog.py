"""The kwok provider's instance-type catalog follows the example pools' GPU types and prices."""

from __future__ import annotations

from pathlib import Path

import yaml

from transfer_operator.api.models import GPUPool
from transfer_operator.devcluster.karpenter import instance_types

POOLS = Path(__file__).resolve().parents[2] / "manifests/examples/pools.yaml"


def test_the_catalog_prices_each_pool_node_in_its_zone():
    pools = [GPUPool.model_validate(doc) for doc in yaml.safe_load_all(POOLS.read_text())]
    catalog = {shape["name"]: shape for shape in instance_types(pools)}
    assert sorted(catalog) == ["a100-8x", "h100-8x", "l4-4x"]
    a100 = {
        tuple(r["values"][0] for r in sorted(o["Requirements"], key=lambda r: r["key"], reverse=True)): o["Price"]
        for o in catalog["a100-8x"]["offerings"]
    }
    assert all(o["Available"] for o in catalog["a100-8x"]["offerings"])
    assert a100 == {("eu-west-1a", "on-demand"): 27.2, ("eu-west-1a", "spot"): 10.8, ("us-east-1a", "on-demand"): 25.6}
    assert catalog["l4-4x"]["resources"]["nvidia.com/gpu"] == "4"
