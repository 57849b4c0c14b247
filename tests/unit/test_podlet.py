"""The podman node's pure parts: a container's command and args as podman flags, and when a pod's
status is worth writing (the e2e test, tests/e2e/test_helm_test.py, runs its pods)."""

from __future__ import annotations

import json

from transfer_operator.devcluster import podlet


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    assert podlet.podman_command({"command": ["/bin/sh", "-c"], "args": ["exec x"]}) == (
        ["--entrypoint", json.dumps(["/bin/sh", "-c"])],
        ["exec x"],
    )
    assert podlet.podman_command({"args": ["true"]}) == ([], ["true"])
    assert podlet.podman_command({}) == ([], [])


def test_a_status_is_written_only_when_it_changes() -> None:
    running = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "c", "state": {"running": {"startedAt": "t1"}}, "restartCount": 0, "ready": True}
        ],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}],
    }
    later = json.loads(json.dumps(running))
    later["containerStatuses"][0]["state"]["running"]["startedAt"] = "t1"
    later["conditions"][0]["lastTransitionTime"] = "t2"
    assert podlet._summary(running) == podlet._summary(later)
    done = json.loads(json.dumps(running))
    done["phase"] = "Succeeded"
    done["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    assert podlet._summary(running) != podlet._summary(done)


def test_the_node_takes_only_pods_that_ask_for_it() -> None:
    node = podlet.node_manifest("podman-0")
    assert node["metadata"]["labels"][podlet.NODE_LABEL] == "true"
    assert node["spec"]["taints"] == [{"key": podlet.NODE_LABEL, "value": "true", "effect": "NoSchedule"}]
