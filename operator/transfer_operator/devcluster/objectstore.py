"""A real S3-compatible object store on loopback: SeaweedFS (`weed server -s3`), Apache-2.0.

One `weed server` process runs master, volume server, filer and the S3 gateway, all on free
loopback ports, with one admin identity whose keys are generated per start. The keys and
the endpoint are written to `objectstore.json` in the state directory, so that `up` in one
process and `down` or a test in another work, and so that `dev-cluster up` can put them into a
Secret of each cluster.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transfer_operator.devcluster.processes import (
    ProcessError,
    ProcessRecord,
    free_port,
    is_alive,
    spawn,
    stop,
    wait_for,
)

COMPONENT = "seaweedfs"
STATE_FILE = "objectstore.json"
REGION = "us-east-1"  # SeaweedFS ignores it; SigV4 clients need one
# SeaweedFS grows volume files as data comes (no preallocation); each bucket takes several
# volumes at once, and full-model checkpoints are ~100 MB each: 100 volumes instead of the
# default 8, which a few checkpointed jobs fill.
VOLUME_SIZE_LIMIT_MB = 1024
MAX_VOLUMES = 100
MIN_FREE_SPACE = "256MiB"
VACUUM_INTERVAL_S = 60
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


class ObjectStoreError(ProcessError):
    pass


@dataclass(frozen=True)
class S3Credentials:
    endpoint: str  # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    region: str = REGION

    def env(self) -> dict[str, str]:
        """The variables AWS SDKs, pyarrow and the trainers read."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }


@dataclass
class ObjectStore:
    state_dir: Path
    credentials: S3Credentials
    ports: dict[str, int]
    process: ProcessRecord

    @property
    def endpoint(self) -> str:
        return self.credentials.endpoint

    def alive(self) -> bool:
        return is_alive(self.process)

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (through the S3 API, as any client would)."""
        from pyarrow import fs

        filesystem = fs.S3FileSystem(**pyarrow_options(self.credentials), allow_bucket_creation=True)
        filesystem.create_dir(bucket)

    def to_json(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "credentials": asdict(self.credentials),
            "ports": self.ports,
            "process": asdict(self.process),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObjectStore:
        return cls(
            state_dir=Path(data["state_dir"]),
            credentials=S3Credentials(**data["credentials"]),
            ports={name: int(port) for name, port in data["ports"].items()},
            process=ProcessRecord(**data["process"]),
        )


def pyarrow_options(credentials: S3Credentials) -> dict[str, Any]:
    """Keyword arguments of pyarrow.fs.S3FileSystem for this store."""
    scheme, _, host = credentials.endpoint.partition("://")
    return {
        "endpoint_override": host,
        "scheme": scheme,
        "access_key": credentials.access_key,
        "secret_key": credentials.secret_key,
        "region": credentials.region,
    }


def _identities(credentials: S3Credentials) -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": credentials.access_key, "secretKey": credentials.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _argv(weed: Path, data_dir: Path, config: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        "-master.telemetry=false",  # no traffic leaves the machine
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        f"-master.vacuumIntervalSeconds={VACUUM_INTERVAL_S}",  # deleted checkpoints free their disk
        # A fixed volume count and an absolute free-space floor: the defaults (volumes from free
        # space, read-only under 1% free) refuse every write on a large disk that others fill.
        f"-volume.max={MAX_VOLUMES}",
        f"-volume.minFreeSpace={MIN_FREE_SPACE}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        f"-s3.config={config}",
    ]


def _s3_answers(endpoint: str) -> bool:
    """True once the gateway answers S3 requests (an anonymous request is refused with 403)."""
    try:
        with urllib.request.urlopen(endpoint, timeout=2.0):
            return True
    except urllib.error.HTTPError as error:
        return error.code in (400, 403)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _writable(credentials: S3Credentials) -> bool:
    """True once a bucket can be created and written (the volume server has joined the master)."""
    from pyarrow import fs

    try:
        filesystem = fs.S3FileSystem(
            **pyarrow_options(credentials), allow_bucket_creation=True, allow_bucket_deletion=True
        )
        filesystem.create_dir("readiness")
        with filesystem.open_output_stream("readiness/probe") as out:
            out.write(b"ok")
        filesystem.delete_dir("readiness")
        return True
    except OSError:
        return False


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _write_private(path: Path, text: str) -> None:
    """Write a file that holds the keys: readable by its owner only, from the first byte."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _save(store: ObjectStore) -> None:
    _write_private(_state_path(store.state_dir), json.dumps(store.to_json(), indent=2))


def load(state_dir: Path) -> ObjectStore | None:
    path = _state_path(state_dir)
    if not path.is_file():
        return None
    return ObjectStore.from_json(json.loads(path.read_text()))


def start(state_dir: Path, weed: Path, timeout_s: float = 90.0) -> ObjectStore:
    """Start SeaweedFS with data under state_dir/objectstore, or return the one running there.

    A store started again in the same state_dir keeps its data, endpoint and keys, so clients
    that were cut off by a restart (an outage, in the fault tests) reconnect unchanged.
    """
    state_dir = state_dir.resolve()
    previous = load(state_dir)
    if previous is not None and previous.alive():
        return previous
    data_dir = state_dir / "objectstore"
    data_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    if previous is not None:
        ports, credentials = previous.ports, previous.credentials
    else:
        ports = {name: free_port() for name in PORT_NAMES}
        credentials = S3Credentials(
            endpoint=f"http://127.0.0.1:{ports['s3']}",
            access_key="transfer" + secrets.token_hex(6),
            secret_key=secrets.token_urlsafe(30),
        )
    config = state_dir / "objectstore-identities.json"
    _write_private(config, json.dumps(_identities(credentials)))
    record = spawn(COMPONENT, _argv(weed, data_dir, config, ports), state_dir)
    store = ObjectStore(state_dir=state_dir, credentials=credentials, ports=ports, process=record)
    _save(store)
    try:
        wait_for("SeaweedFS S3 gateway", lambda: _s3_answers(credentials.endpoint), timeout_s, record)
        wait_for(
            "SeaweedFS to accept writes", lambda: _writable(credentials), timeout_s, record, interval_s=1.0
        )
    except BaseException:
        stop(record)
        raise
    return store


def stop_store(state_dir: Path) -> bool:
    """Stop the store of state_dir; its data, endpoint and keys stay for the next start.
    False when none was running."""
    store = load(state_dir)
    if store is None or not store.alive():
        return False
    stop(store.process)
    return True


def weed_binary(build: bool = True) -> Path:
    """The cached `weed` binary, built by hack/controlplane/build-component.sh when missing."""
    from transfer_operator.devcluster.binaries import ensure_component

    return ensure_component(COMPONENT, build=build) / "weed"
