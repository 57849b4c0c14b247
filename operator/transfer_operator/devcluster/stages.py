"""kwok stages of the dev cluster: kwok's own "fast" stages, except for a RayJob's submitter pod,
which runs a simulated Ray job (see raysim.py and docs/controlplane.md#simulated-ray-jobs).

kwok completes any pod of a Job at once. A RayJob's submitter (`ray job submit`, a Job KubeRay
creates) instead stays Running until the simulator stamps it with when its Ray job ends and how
(two annotations), and then these stages end it at that time: Succeeded with exit code 0, or
Failed with exit code 1 (an injected failure). Without a stamp the submitter keeps running.
"""

from __future__ import annotations

from typing import Any

import yaml

SUBMITTER_CONTAINER = "ray-job-submitter"  # KubeRay's name for it, and the engine's
FINISH_AT_ANNOTATION = "sim.transfer.dev/finish-at"  # RFC 3339: when the simulated Ray job ends
EXIT_CODE_ANNOTATION = "sim.transfer.dev/exit-code"  # "0": SUCCEEDED, "1": FAILED
POD_COMPLETE_STAGE = "pod-complete"

_CONTAINERS = ".spec.containers.[].name"


def _not_submitter() -> dict[str, Any]:
    return {"key": _CONTAINERS, "operator": "NotIn", "values": [SUBMITTER_CONTAINER]}


def _terminated_status(exit_code: int) -> str:
    phase, reason = ("Succeeded", "Completed") if exit_code == 0 else ("Failed", "Error")
    # kwok renders this Go template into the pod's status.
    return (
        "{{ $now := Now }}\n"
        "containerStatuses:\n"
        "{{ range .spec.containers }}\n"
        "- image: {{ .image | Quote }}\n"
        "  name: {{ .name | Quote }}\n"
        "  ready: false\n"
        "  restartCount: 0\n"
        "  started: false\n"
        "  state:\n"
        "    terminated:\n"
        f"      exitCode: {exit_code}\n"
        "      finishedAt: {{ $now | Quote }}\n"
        f"      reason: {reason}\n"
        "      startedAt: {{ $now | Quote }}\n"
        "{{ end }}\n"
        f"phase: {phase}\n"
    )


def submitter_stage(exit_code: int) -> dict[str, Any]:
    """Ends a stamped submitter pod at its `finish-at` time with `exit_code`."""
    outcome = "succeed" if exit_code == 0 else "fail"
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": f"ray-submitter-{outcome}"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {"key": _CONTAINERS, "operator": "In", "values": [SUBMITTER_CONTAINER]},
                    {
                        "key": f'.metadata.annotations["{EXIT_CODE_ANNOTATION}"]',
                        "operator": "In",
                        "values": [str(exit_code)],
                    },
                    {"key": f'.metadata.annotations["{FINISH_AT_ANNOTATION}"]', "operator": "Exists"},
                ]
            },
            "delay": {
                "durationMilliseconds": 0,
                "durationFrom": {"jq": {"expression": f'.metadata.annotations["{FINISH_AT_ANNOTATION}"]'}},
            },
            "next": {"statusTemplate": _terminated_status(exit_code)},
        },
    }


def render_stages(kwok_stages_yaml: str) -> str:
    """kwok's stages (as build.sh copies them) with the submitter kept out of `pod-complete`,
    plus the two stages that end it."""
    stages = [doc for doc in yaml.safe_load_all(kwok_stages_yaml) if doc]
    for stage in stages:
        if stage["metadata"]["name"] == POD_COMPLETE_STAGE:
            stage["spec"]["selector"]["matchExpressions"].append(_not_submitter())
    stages += [submitter_stage(0), submitter_stage(1)]
    return yaml.safe_dump_all(stages, sort_keys=False)
