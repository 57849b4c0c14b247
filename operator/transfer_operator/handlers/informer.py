"""Watch-fed, in-memory indexes of the objects the scheduling cycle reads (informer-style).

Each kind is LISTed once, then WATCHed from the list's resourceVersion with bookmarks; the stream
is resumed from the last resourceVersion it delivered. A relist happens only when the API server
answers 410 Gone (the resourceVersion fell out of its window). The cycle reads the stores, never
the API server, and writes what it wrote back into them (`Store.apply` with the object the write
returned), so the next cycle does not act on state the watch has not delivered yet.

Why not kopf's `@kopf.index`: kopf pauses its watches on a replica that peering froze, but the
Lease holder that runs the cycle may be such a replica; and its index is not writable, so the
cycle's own writes could not be written through. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from transfer_operator import metrics
from transfer_operator.api.clusters import TransferCluster
from transfer_operator.api.enums import GROUP, VERSION, Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.api.queues import (
    TransferPriorityClass,
    TransferQueue,
    parse_transferpriorityclass,
    parse_transferqueue,
)
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob
from transfer_operator.engine.elastic_pool import GPU_RESOURCE
from transfer_operator.engine.isolation import ANNOTATION_SPEC, LABEL_SCOPE
from transfer_operator.engine.node_health import JobAttempt, attempt_of
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER, RAYJOB_API_VERSION

log = logging.getLogger(__name__)
RAY_GROUP, RAY_VERSION = RAYJOB_API_VERSION.split("/")
Key = tuple[str, str]  # (namespace or "", name)
V = TypeVar("V")
# A deleted key ignores events older than its deletion this long (a lagging watch must not
# bring back an object the cycle has just deleted).
TOMBSTONE_S = 300.0
DELETED_PODS_KEPT = 20_000  # deleted pods kept for the next cycle at most (PodStore)
DELETED_PODS_S = 120.0  # and for this long


@dataclass(frozen=True)
class Kind:
    plural: str
    group: str = ""  # "" is the core API group
    version: str = "v1"
    label_selector: str | None = None
    namespace: str | None = None  # None: every namespace (or cluster-scoped)
    # Another product's API that may not be installed (or not granted): a LIST answered 404 or
    # 403 leaves the store empty and counts as synced; it is listed again every ABSENT_RETRY_S.
    optional: bool = False


TRANSFERJOBS = Kind("transferjobs", GROUP, VERSION)
GPUPOOLS = Kind("gpupools", GROUP, VERSION)
TRANSFERCLUSTERS = Kind("transferclusters", GROUP, VERSION)
RAYJOBS = Kind("rayjobs", RAY_GROUP, RAY_VERSION, f"{LABEL_MANAGED_BY}={MANAGER}")
NODES = Kind("nodes")
NAMESPACES = Kind("namespaces")
TRANSFERQUEUES = Kind("transferqueues", GROUP, VERSION)
TRANSFERPRIORITYCLASSES = Kind("transferpriorityclasses", GROUP, VERSION)
PODS = Kind("pods", label_selector=f"{LABEL_MANAGED_BY}={MANAGER}")
# Karpenter (elastic pools, handlers/elastic.py): its NodePools and the NodeClaims they bought.
NODEPOOLS = Kind("nodepools", "karpenter.sh", "v1", optional=True)
NODECLAIMS = Kind("nodeclaims", "karpenter.sh", "v1", optional=True)
# The namespace-scope NetworkPolicies the operator writes (handlers/children.py). Optional: where
# RBAC does not grant the list, the store is emptied at each retry and a namespace's policy is
# written again at its next admission (at most every ABSENT_RETRY_S).
NETWORKPOLICIES = Kind(
    "networkpolicies", "networking.k8s.io", "v1", f"{LABEL_SCOPE}=namespace", optional=True
)
ABSENT_RETRY_S = 30.0


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class WatchSource(Protocol):
    def list_objects(self, kind: Kind) -> tuple[list[dict[str, Any]], str]: ...

    def watch_objects(self, kind: Kind, resource_version: str, timeout_s: int) -> Iterable[dict[str, Any]]:
        """Raw watch events ({"type", "object"}) after `resource_version`; raises Gone on 410."""
        ...


def resource_version(body: dict[str, Any]) -> int:
    """resourceVersions are opaque strings, but etcd's are integers; unparsable ones compare as 0."""
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def key_of(body: dict[str, Any]) -> Key:
    metadata = body.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name", ""))


def slim(body: dict[str, Any]) -> dict[str, Any]:
    """The body without managedFields and the last-applied annotation: the bulk of an object's
    memory, and nothing the operator reads."""
    metadata = dict(body.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        metadata["annotations"] = {
            k: v for k, v in annotations.items() if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
    return {**body, "metadata": metadata}


@dataclass
class Store(Generic[V]):
    """Key -> (resourceVersion, value); `prepare` turns a body into what the cycle reads (parsed
    once per change, not once per cycle)."""

    prepare: Callable[[dict[str, Any]], V]
    items: dict[Key, tuple[int, V]] = field(default_factory=dict)
    tombstones: dict[Key, tuple[int, float]] = field(default_factory=dict)
    changed: set[Key] = field(default_factory=set)  # keys changed since `take_changed`
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event | None = None  # set on news from the watch: work for the cycle
    # Whether an object is news for the cycle, given what the store held of it (None: a new one;
    # a deleted object always is; no `news`: every change is): not the status the cycle itself
    # writes, nor the RayJob it created, whose watch events may come before the write-through.
    news: Callable[[dict[str, Any], V | None], bool] | None = None

    def apply(self, event_type: str, body: dict[str, Any], *, mark: bool = True) -> None:
        """A watch event, or (mark=False) the object a write of the cycle returned."""
        key, version = key_of(body), resource_version(body)
        with self.lock:
            stored = self.items.get(key)
            if event_type == "DELETED":
                if stored is None or version == 0 or version >= stored[0]:
                    self._put(key, None)
                    self.tombstones[key] = (max(version, stored[0] if stored else 0), time.monotonic())
                    if mark:
                        self.changed.add(key)
                        self._wake()
                return
            if stored is not None and version and version <= stored[0]:
                return  # what the cycle wrote through, or older
            tomb = self.tombstones.get(key)
            if tomb is not None:
                if version <= tomb[0] and time.monotonic() - tomb[1] < TOMBSTONE_S:
                    return
                del self.tombstones[key]
            value = self.prepared(body, stored[1] if stored else None)
            self._put(key, (version, value))
            if mark:
                self.changed.add(key)
                if self.news is None or self.news(body, stored[1] if stored else None):
                    self._wake()

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def _put(self, key: Key, entry: tuple[int, V] | None) -> None:
        """Set one key (None: remove it), with the lock held: the one place `items` changes but a relist."""
        if entry is None:
            self.items.pop(key, None)
        else:
            self.items[key] = entry

    def _relisted(self) -> None:
        """`items` was replaced by a relist (the lock is held)."""

    def prepared(self, body: dict[str, Any], previous: V | None) -> V:  # noqa: ARG002
        return self.prepare(body)

    def delete(self, key: Key) -> None:
        """The cycle deleted the object: forget it now, and ignore the watch's older news of it."""
        with self.lock:
            stored = self.items.get(key)
            self._put(key, None)
            self.tombstones[key] = (stored[0] if stored else 0, time.monotonic())

    def replace(self, bodies: Iterable[dict[str, Any]], namespace: str | None = None) -> None:
        """A full list: objects absent from it are gone; a listed one older than ours stays ours.
        With `namespace`, a list of that namespace only: the store's other namespaces stay."""
        fresh: dict[Key, tuple[int, V]] = {}
        prepared = [(key_of(b), resource_version(b), b) for b in bodies]
        with self.lock:
            old = self.items
        if namespace is not None:
            old = {key: value for key, value in old.items() if key[0] == namespace}
        for key, version, body in prepared:
            stored = old.get(key)
            if stored is not None and version and version <= stored[0]:
                fresh[key] = stored
            else:
                fresh[key] = (version, self.prepared(body, stored[1] if stored else None))
        with self.lock:
            relisted = set(old) ^ set(fresh) | {k for k in fresh if old.get(k) is not fresh[k]}
            self.changed |= relisted
            if relisted:
                self._wake()
            if namespace is None:
                self.items = fresh
                self.tombstones.clear()
            else:
                # Other namespaces' informers write this store too: keep what they hold now.
                others = {key: value for key, value in self.items.items() if key[0] != namespace}
                self.items = others | fresh
                self.tombstones = {key: tomb for key, tomb in self.tombstones.items() if key[0] != namespace}
            self._relisted()

    def get(self, key: Key) -> V | None:
        with self.lock:
            stored = self.items.get(key)
        return None if stored is None else stored[1]

    def values(self) -> list[V]:
        with self.lock:
            return [value for _, value in self.items.values()]

    def take_changed(self) -> set[Key]:
        with self.lock:
            changed, self.changed = self.changed, set()
        return changed

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


@dataclass
class Informer:
    """LIST once, then WATCH from the last resourceVersion; relist only after 410 Gone."""

    source: WatchSource
    kind: Kind
    store: Store[Any]
    resource_version: str | None = None  # None: list next
    watch_timeout_s: int = 60
    synced: threading.Event = field(default_factory=threading.Event)
    absent: bool = False  # an optional kind the API server does not serve (or lets us list)
    absent_at: float = 0.0  # when it said so

    def step(self) -> None:
        """One LIST (when needed) or one watch stream until the server closes it."""
        if self.resource_version is None:
            if self.absent and time.monotonic() - self.absent_at < ABSENT_RETRY_S:
                return  # not served a moment ago: ask again later
            try:
                items, version = self.source.list_objects(self.kind)
            except Exception as error:
                if not self.kind.optional or getattr(error, "status", None) not in (403, 404):
                    raise
                if not self.absent:
                    log.info("%s.%s not served or not allowed (%s): none", self.kind.plural, self.kind.group,
                             getattr(error, "status", None))
                self.absent, self.absent_at = True, time.monotonic()
                self.store.replace([], self.kind.namespace)
                self.synced.set()
                return
            self.absent = False
            self.store.replace(items, self.kind.namespace)
            self.resource_version = version
            self.synced.set()
            return
        try:
            for event in self.source.watch_objects(self.kind, self.resource_version, self.watch_timeout_s):
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message", "410"))
                    raise RuntimeError(f"watch of {self.kind.plural} failed: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind != "BOOKMARK":
                    self.store.apply(kind, obj)
                if version:
                    self.resource_version = version
        except Gone as error:
            log.info("watch of %s expired (%s): listing again", self.kind.plural, error)
            metrics.WATCH_RELISTS.labels(kind=self.kind.plural).inc()
            self.resource_version = None

    def run(self, stopped: threading.Event) -> None:
        backoff_s = 1.0
        while not stopped.is_set():
            try:
                self.step()
                backoff_s = 1.0
                if self.absent:
                    stopped.wait(ABSENT_RETRY_S)
            except Exception as error:  # a broken stream resumes from the last resourceVersion
                log.warning("watch of %s broke: %s; retrying in %.0f s", self.kind.plural, error, backoff_s)
                metrics.RECONCILE_ERRORS.labels(stage="watch").inc()
                stopped.wait(backoff_s)
                backoff_s = min(30.0, backoff_s * 2)


# --- what each store keeps ------------------------------------------------------------------

class ParsedJob(NamedTuple):
    """A TransferJob as the cycle reads it: the body without its spec, the parsed job, and what is
    wrong with the spec. A new job with a bad spec has no parsed job; one that holds GPUs keeps
    running on the spec it started with (its previous parse, with the new metadata and status)."""

    body: dict[str, Any]
    job: TransferJob | None
    problems: tuple[str, ...] = ()


ParsedPool = tuple[dict[str, Any], GPUPool | None]
ParsedCluster = tuple[dict[str, Any], TransferCluster | None]


def prepare_transferjob(body: dict[str, Any], previous: ParsedJob | None = None) -> ParsedJob:
    body = slim(body)
    slimmed = {k: v for k, v in body.items() if k != "spec"}
    try:
        return ParsedJob(slimmed, parse_transferjob(body))
    except InvalidSpec as error:
        problems = tuple(error.problems)
    kept = previous.job if previous is not None else None
    if kept is not None and Phase(body.get("status", {}).get("phase") or "Pending").holds_capacity:
        old_spec = kept.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return ParsedJob(slimmed, parse_transferjob({**body, "spec": old_spec}), problems)
    return ParsedJob(slimmed, None, problems)


def job_key(body: dict[str, Any]) -> str:
    """A TransferJob's key, as `TransferJob.key` spells it, from its body."""
    metadata = body["metadata"]
    return f"{metadata.get('namespace') or 'default'}/{metadata['name']}"


@dataclass
class JobView:
    """The TransferJobs as a cycle reads them, by job key, kept up to date at each change: a cycle
    copies these instead of a pass over the whole fleet."""

    jobs: dict[str, tuple[dict[str, Any], TransferJob]] = field(default_factory=dict)  # parsed ones
    invalid: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = field(default_factory=dict)  # refused specs
    deleting: set[str] = field(default_factory=set)  # with a deletionTimestamp
    holding: dict[str, JobAttempt] = field(default_factory=dict)  # the current attempt of each holding GPUs

    def put(self, key: str, parsed: ParsedJob | None) -> None:
        """The job under `key` is now `parsed` (None: gone)."""
        job = parsed.job if parsed is not None else None
        if parsed is not None and job is not None:
            self.jobs[key] = (parsed.body, job)
        else:
            self.jobs.pop(key, None)
        if job is not None and job.status.phase.holds_capacity:
            self.holding[key] = attempt_of(job)
        else:
            self.holding.pop(key, None)
        if parsed is not None and parsed.problems:
            self.invalid[key] = (parsed.body, parsed.problems)
        else:
            self.invalid.pop(key, None)
        if parsed is not None and parsed.body["metadata"].get("deletionTimestamp"):
            self.deleting.add(key)
        else:
            self.deleting.discard(key)

    def copy(self) -> JobView:
        return JobView(dict(self.jobs), dict(self.invalid), set(self.deleting), dict(self.holding))


@dataclass
class JobStore(Store[ParsedJob]):
    """TransferJobs: a spec change is parsed against the job's previous parse (see ParsedJob); the
    cycle reads them through `view`."""

    prepare: Callable[[dict[str, Any]], ParsedJob] = prepare_transferjob
    _view: JobView = field(default_factory=JobView)

    def prepared(self, body: dict[str, Any], previous: ParsedJob | None) -> ParsedJob:
        return prepare_transferjob(body, previous)

    def _put(self, key: Key, entry: tuple[int, ParsedJob] | None) -> None:
        super()._put(key, entry)
        self._view.put(f"{key[0] or 'default'}/{key[1]}", entry[1] if entry is not None else None)

    def _relisted(self) -> None:
        self._view = JobView()
        for _, parsed in self.items.values():
            self._view.put(job_key(parsed.body), parsed)

    def view(self) -> JobView:
        """A copy the cycle may change: a copy of four mappings, whatever the fleet's size."""
        with self.lock:
            return self._view.copy()


def prepare_gpupool(body: dict[str, Any]) -> ParsedPool:
    body = slim(body)
    try:
        return body, parse_gpupool(body)
    except InvalidSpec as error:
        log.warning("skipping GPUPool %s: %s", body["metadata"]["name"], error)
        return body, None


def prepare_transfercluster(body: dict[str, Any]) -> ParsedCluster:
    body = slim(body)
    try:
        return body, TransferCluster.model_validate(body)
    except ValueError as error:
        log.warning("skipping TransferCluster %s: %s", body["metadata"]["name"], error)
        return body, None


def prepare_rayjob(body: dict[str, Any]) -> dict[str, Any]:
    """Name, owners (origin labels in a worker cluster) and status are all the cycle reads of a RayJob."""
    metadata = body.get("metadata") or {}
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace") or "default",
            "ownerReferences": metadata.get("ownerReferences") or [],
            "labels": metadata.get("labels") or {},
        },
        "status": dict(body.get("status") or {}),
    }


def prepare_node(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {
        "metadata": {"name": metadata.get("name", ""), "labels": metadata.get("labels") or {}},
        "spec": {"taints": (body.get("spec") or {}).get("taints") or []},
        "status": {"conditions": (body.get("status") or {}).get("conditions") or []},
    }


def prepare_pod(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace") or "default",
            "labels": metadata.get("labels") or {},
        },
        "spec": {"nodeName": (body.get("spec") or {}).get("nodeName")},
        "gpus": pod_gpus(body),
    }


@dataclass
class PodStore(Store[dict[str, Any]]):
    """The jobs' pods, and the bound ones deleted since the cycle last asked (`take_deleted`): a
    node drained and removed between two cycles (Karpenter's disruption, a fast scale-down)
    takes its pods with it, and KubeRay's new ones wait unbound, so the cycle would see no pod on
    a lost or vanished node; the deleted pods still name the node they were on."""

    prepare: Callable[[dict[str, Any]], dict[str, Any]] = prepare_pod
    deleted: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def apply(self, event_type: str, body: dict[str, Any], *, mark: bool = True) -> None:
        if event_type == "DELETED" and (body.get("spec") or {}).get("nodeName"):
            with self.lock:
                if len(self.deleted) >= DELETED_PODS_KEPT:
                    del self.deleted[: DELETED_PODS_KEPT // 2]  # a replica that never runs a cycle
                self.deleted.append((time.monotonic(), prepare_pod(body)))
        super().apply(event_type, body, mark=mark)

    def take_deleted(self, within_s: float = DELETED_PODS_S) -> list[dict[str, Any]]:
        """The bound pods deleted since the last call, within the last `within_s` seconds."""
        with self.lock:
            deleted, self.deleted = self.deleted, []
        oldest = time.monotonic() - within_s
        return [pod for at, pod in deleted if at >= oldest]


def pod_gpus(body: dict[str, Any]) -> int:
    """The GPUs a pod's containers are given (limits; requests when a container has no limit)."""
    total = 0
    for container in (body.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(GPU_RESOURCE)
        try:
            total += int(amount or 0)
        except (TypeError, ValueError):
            continue
    return total


def prepare_admin_object(parse: Callable[[dict[str, Any]], V]) -> Callable[[dict[str, Any]], V | None]:
    """A TransferQueue or TransferPriorityClass, parsed; an invalid one is skipped (and logged)."""

    def prepare(body: dict[str, Any]) -> V | None:
        try:
            return parse(slim(body))
        except InvalidSpec as error:
            log.warning("skipping %s %s: %s", body.get("kind"), (body.get("metadata") or {}).get("name"), error)
            return None

    return prepare


def prepare_karpenter_object(body: dict[str, Any]) -> dict[str, Any]:
    """A NodePool or NodeClaim: name, labels, and (a NodeClaim) its node and conditions."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "labels": metadata.get("labels") or {},
            "annotations": metadata.get("annotations") or {},
            "creationTimestamp": metadata.get("creationTimestamp"),
        },
        "status": {"nodeName": status.get("nodeName"), "conditions": status.get("conditions") or []},
    }


def prepare_namespace(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {"metadata": {"name": metadata.get("name", ""), "labels": metadata.get("labels") or {}}}


def prepare_network_policy(body: dict[str, Any]) -> str:
    """What the cycle compares: the digest of the spec the operator wrote."""
    return str(((body.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SPEC, ""))


def spec_or_deletion_changed(body: dict[str, Any], old: dict[str, Any]) -> bool:
    metadata, before = body.get("metadata") or {}, old.get("metadata") or {}
    return metadata.get("generation") != before.get("generation") or bool(
        metadata.get("deletionTimestamp")
    ) != bool(before.get("deletionTimestamp"))


@dataclass
class FleetIndex:
    """The stores the cycle reads, and the informers that feed them."""

    transferjobs: JobStore = field(default_factory=JobStore)
    gpupools: Store[ParsedPool] = field(default_factory=lambda: Store(prepare_gpupool))
    rayjobs: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_rayjob))
    nodes: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_node))
    pods: PodStore = field(default_factory=PodStore)
    # Queue rules (handlers/queues.py): the admin's objects and the namespaces' labels.
    transferqueues: Store[TransferQueue | None] = field(
        default_factory=lambda: Store(prepare_admin_object(parse_transferqueue))
    )
    priorityclasses: Store[TransferPriorityClass | None] = field(
        default_factory=lambda: Store(prepare_admin_object(parse_transferpriorityclass))
    )
    namespaces: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_namespace))
    transferclusters: Store[ParsedCluster] = field(default_factory=lambda: Store(prepare_transfercluster))
    nodepools: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_karpenter_object))
    nodeclaims: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_karpenter_object))
    networkpolicies: Store[str] = field(default_factory=lambda: Store(prepare_network_policy))
    informers: list[Informer] = field(default_factory=list)
    # Set when a watch brings news of a TransferJob, GPUPool or RayJob (`Store.news`): the
    # scheduling loop starts its next cycle then instead of at the end of its interval.
    work: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        for store in (self.transferjobs, self.gpupools, self.rayjobs):
            store.wake = self.work
        self.transferjobs.news = lambda body, old: old is None or spec_or_deletion_changed(body, old.body)
        self.gpupools.news = lambda body, old: old is None or spec_or_deletion_changed(body, old[0])
        # A RayJob is news when KubeRay reports (the operator creates every one it watches).
        self.rayjobs.news = lambda body, old: (body.get("status") or {}) != (old["status"] if old else {})

    def karpenter_served(self) -> bool:
        """Karpenter's NodePool API is served and listable (elastic pools can buy nodes)."""
        return any(i.kind is NODEPOOLS and i.synced.is_set() and not i.absent for i in self.informers)

    def connect(self, source: WatchSource, *, nodes: bool = True, pod_namespaces: Sequence[str] = ()) -> None:
        """`pod_namespaces`: list the jobs' pods in these namespaces only (one watch each, one
        store); empty: in every namespace."""
        pairs: list[tuple[Kind, Store[Any]]] = [
            (GPUPOOLS, self.gpupools),
            (TRANSFERJOBS, self.transferjobs),
            (RAYJOBS, self.rayjobs),
            (TRANSFERQUEUES, self.transferqueues),
            (TRANSFERPRIORITYCLASSES, self.priorityclasses),
            (NAMESPACES, self.namespaces),
            (TRANSFERCLUSTERS, self.transferclusters),
            (NETWORKPOLICIES, self.networkpolicies),
        ]
        if nodes:
            pod_kinds = [replace(PODS, namespace=n) for n in sorted(set(pod_namespaces))] or [PODS]
            pairs += [*((kind, self.pods) for kind in pod_kinds), (NODES, self.nodes)]
            pairs += [(NODEPOOLS, self.nodepools), (NODECLAIMS, self.nodeclaims)]
        self.informers = [Informer(source, kind, store) for kind, store in pairs]

    def start(self, stopped: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=i.run, args=(stopped,), name=f"watch-{i.kind.plural}", daemon=True)
            for i in self.informers
        ]
        for thread in threads:
            thread.start()
        return threads

    def wait_synced(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in self.informers)

    def is_synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    def step_all(self) -> None:
        """Bring each informer up to date in this thread: a list when it has none, else one watch
        (and a relist after 410). For a source whose watch returns at once (tests)."""
        for informer in self.informers:
            informer.step()
            if informer.resource_version is None:
                informer.step()

    def sizes(self) -> Iterator[tuple[str, int]]:
        for informer in self.informers:
            yield informer.kind.plural, len(informer.store)
