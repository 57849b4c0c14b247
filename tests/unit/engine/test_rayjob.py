from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.api.models import GPUPool, ScalingSpec, TransferJob
from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.engine.rayjob import MAX_NAME, PoolPin, label_value, rayjob_name, render_rayjob

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = ROOT / "manifests" / "examples"


def example(name: str) -> TransferJob:
    return parse_transferjob(yaml.safe_load((EXAMPLES / name).read_text()))


def pool(name: str) -> GPUPool:
    for document in yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text()):
        if document["metadata"]["name"] == name:
            return parse_gpupool(document)
    raise KeyError(name)


def rendered(job_file: str, pool_name: str, attempt: int = 1) -> dict:
    return render_rayjob(
        example(job_file), PoolPin.of(pool_name, pool(pool_name).spec), attempt, token_auth=True
    )


@pytest.mark.parametrize(
    "job_file, pool_name",
    [("lora-sentiment.yaml", "eu-west-a100"), ("digits-feature-extraction.yaml", "ap-south-l4")],
)
def test_matches_golden(job_file, pool_name):
    manifest = yaml.safe_dump(rendered(job_file, pool_name), sort_keys=False)
    golden = GOLDEN / f"{Path(job_file).stem}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(manifest)
    assert manifest == golden.read_text(), "run with UPDATE_GOLDEN=1 after an intended change"


def test_pins_every_pod_to_the_pool_and_sizes_the_gang():
    manifest = rendered("lora-sentiment.yaml", "eu-west-a100")
    spec = manifest["spec"]
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["suspend"] is False
    cluster = spec["rayClusterSpec"]
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 2
    templates = [cluster["headGroupSpec"]["template"], workers["template"], spec["submitterPodTemplate"]]
    for template in templates:
        assert template["spec"]["nodeSelector"] == {"transfer.dev/pool": "eu-west-a100"}
        assert template["spec"]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert (
        "nvidia.com/gpu"
        not in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    )


def _placed(job: TransferJob, price_class: str) -> TransferJob:
    placement = {"pool": "p", "region": "eu-west", "gpuType": "A100", "priceClass": price_class,
                 "usdPerGpuHour": 1.0, "usdPerHour": 2.0, "gpus": 2}
    return job.model_copy(update={"status": job.status.model_validate({"placement": placement, "attempts": 1})})


def test_an_on_demand_placement_on_an_elastic_pool_that_sells_spot_stays_off_spot_nodes():
    spec = pool("eu-west-a100").spec  # sells spot
    elastic = spec.model_copy(update={"scaling": ScalingSpec.model_validate({"maxNodes": 2})})
    job = example("lora-sentiment.yaml")
    not_spot = {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
    manifest = render_rayjob(_placed(job, "onDemand"), PoolPin.of("p", elastic), 1)
    cluster = manifest["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"], cluster["workerGroupSpecs"][0]["template"],
                 manifest["spec"]["submitterPodTemplate"]]
    for template in templates:
        terms = template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [{"matchExpressions": [not_spot]}]
    # A spot placement, or a pool that is not elastic, gets no capacity-type term.
    for placed, pin in ((_placed(job, "spot"), PoolPin.of("p", elastic)), (_placed(job, "onDemand"), PoolPin.of("p", spec))):
        worker = render_rayjob(placed, pin, 1)["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]
        assert "affinity" not in worker["spec"]


def test_trainer_contract_is_in_the_runtime_env():
    job = example("lora-sentiment.yaml")
    job.status.last_checkpoint = "/ckpt/step-40"
    manifest = render_rayjob(
        job, PoolPin.of("eu-west-a100", pool("eu-west-a100").spec), attempt=3, token_auth=True
    )
    env = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["env_vars"]
    assert json.loads(env["TRANSFER_JOB"])["strategy"]["lora"]["rank"] == 8
    assert env["TRANSFER_JOB_NAME"] == "reviews-lora"
    assert env["TRANSFER_RESUME_FROM"] == "/ckpt/step-40"
    assert env["TRANSFER_ATTEMPT"] == "3"
    assert manifest["spec"]["entrypoint"] == "python -m transfer_trainers.launch"
    assert manifest["metadata"]["name"] == "reviews-lora-a3"


def test_suspend_is_honoured_and_secrets_stay_references():
    job = example("lora-sentiment.yaml")
    job.spec.suspend = True
    job.spec.checkpoint.secret_ref = (
        type(job.spec.checkpoint).model_fields["secret_ref"].annotation.__args__[0](name="s3-creds")
    )
    manifest = render_rayjob(
        job, PoolPin.of("eu-west-a100", pool("eu-west-a100").spec), attempt=1, token_auth=True
    )
    assert manifest["spec"]["suspend"] is True
    container = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_rayjob_names_are_deterministic_and_short():
    long_name = "x" * 200
    assert rayjob_name(long_name, 12) == rayjob_name(long_name, 12)
    assert len(rayjob_name(long_name, 12)) <= MAX_NAME
    assert rayjob_name("a" * 60, 1) != rayjob_name("a" * 59 + "b", 1)
    assert rayjob_name("short", 2) == "short-a2"


def test_a_job_cannot_take_the_rayjob_name_of_another():
    # The attack on the old scheme: name a job exactly what a long name was shortened to.
    long_name = "team-a-" + "x" * 60
    hashed = rayjob_name(long_name, 1)
    assert rayjob_name(hashed.removesuffix("-a1"), 1) != hashed
    # Names KubeRay could not use as a Service name are hashed too, never merely rewritten.
    assert rayjob_name("a.b", 1) != rayjob_name("a-b", 1)
    assert rayjob_name("a.b", 1) != rayjob_name(rayjob_name("a.b", 1).removesuffix("-a1"), 1)


DNS_NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?", fullmatch=True)
RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@settings(max_examples=500, deadline=None)
@given(first=DNS_NAMES, second=DNS_NAMES, attempts=st.tuples(st.integers(1, 100), st.integers(1, 100)))
def test_rayjob_names_and_job_labels_are_one_to_one(first, second, attempts):
    for name, attempt in ((first, attempts[0]), (second, attempts[1])):
        rendered_name = rayjob_name(name, attempt)
        assert RFC1035.match(rendered_name) and len(rendered_name) <= MAX_NAME
        assert len(label_value(name)) <= 63
    if (first, attempts[0]) != (second, attempts[1]):
        assert rayjob_name(first, attempts[0]) != rayjob_name(second, attempts[1])
    if first != second:
        assert label_value(first) != label_value(second)


def test_runtime_env_yaml_escapes_the_job_once():
    job = example("lora-sentiment.yaml")
    job.spec.trainer.config = {"quote": 'say "hi"', "path": "C:\\x", "apostrophe": "it's"}
    manifest = render_rayjob(
        job, PoolPin.of("eu-west-a100", pool("eu-west-a100").spec), attempt=1, token_auth=True
    )
    text = manifest["spec"]["runtimeEnvYAML"]
    assert '"model":{"source"' in text  # JSON inside JSON would escape every quote of the spec
    spec = json.loads(yaml.safe_load(text)["env_vars"]["TRANSFER_JOB"])
    assert spec["trainer"]["config"] == job.spec.trainer.config


def test_render_is_deterministic():
    assert rendered("lora-sentiment.yaml", "eu-west-a100") == rendered("lora-sentiment.yaml", "eu-west-a100")


def test_runtime_env_yaml_is_the_pure_python_emitters_text():
    """libyaml's emitter (rendering uses it when PyYAML has it) writes what the pure-Python one
    would, quotes, backslashes and non-ASCII included."""
    job = example("lora-sentiment.yaml")
    job.spec.trainer.config = {"quote": 'say "hi"', "path": "C:\\x", "apostrophe": "it's", "name": "café ü 日本"}
    manifest = render_rayjob(
        job, PoolPin.of("eu-west-a100", pool("eu-west-a100").spec), attempt=1, token_auth=True
    )
    env = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])
    pure = yaml.dump(env, Dumper=yaml.SafeDumper, sort_keys=True, width=float("inf"), allow_unicode=True)
    assert manifest["spec"]["runtimeEnvYAML"] == pure
    assert len(pure.splitlines()) == len(env["env_vars"]) + 1  # one line per variable: no folding
