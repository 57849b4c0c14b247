"""Enumerations shared by the API, the scheduler, the engine and the handlers."""

from enum import StrEnum

GROUP = "transfer.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class StrategyType(StrEnum):
    FEATURE_EXTRACTION = "featureExtraction"
    FINE_TUNE = "fineTune"
    PROGRESSIVE_UNFREEZING = "progressiveUnfreezing"
    LORA = "lora"
    DISTILLATION = "distillation"
    DOMAIN_ADAPTATION = "domainAdaptation"


class Task(StrEnum):
    TEXT_CLASSIFICATION = "textClassification"
    IMAGE_CLASSIFICATION = "imageClassification"
    TABULAR_CLASSIFICATION = "tabularClassification"
    CAUSAL_LM = "causalLM"


class OutputFormat(StrEnum):
    ADAPTER = "adapter"  # the LoRA adapter (small; needs the base model to load)
    MERGED = "merged"  # LoRA merged into the base weights
    FULL = "full"  # every weight of the adapted model


class DatasetFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"
    BUILTIN = "builtin"


class Preference(StrEnum):
    CHEAPEST = "cheapest"
    FASTEST = "fastest"
    BALANCED = "balanced"


class PriceClass(StrEnum):
    ON_DEMAND = "onDemand"
    SPOT = "spot"


class Provisioner(StrEnum):
    """The node provisioner that buys and releases an elastic pool's nodes."""

    KARPENTER = "karpenter"


class Phase(StrEnum):
    PENDING = "Pending"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    PREEMPTED = "Preempted"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)

    @property
    def holds_capacity(self) -> bool:
        """Phases in which the job owns GPUs of its pool."""
        return self in (Phase.ADMITTED, Phase.RUNNING)


class ConditionType(StrEnum):
    READY = "Ready"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    FINISHED = "Finished"


class Reason(StrEnum):
    """Every condition and event reason the operator writes."""

    INVALID_SPEC = "InvalidSpec"
    NO_FITTING_POOL = "NoFittingPool"
    QUOTA_EXCEEDED = "QuotaExceeded"
    BUDGET_TOO_LOW = "BudgetTooLow"
    ADMITTED = "Admitted"
    RAYJOB_CREATED = "RayJobCreated"
    RAYJOB_CREATE_FAILED = "RayJobCreateFailed"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    PREEMPTED = "Preempted"
    PREEMPTING = "Preempting"  # waiting for lower-priority jobs to leave
    POOL_LOST = "PoolLost"
    BUDGET_EXCEEDED = "BudgetExceeded"
    BUDGET_WARNING = "BudgetWarning"
    MAX_ATTEMPTS = "MaxAttemptsReached"
    RAYJOB_LOST = "RayJobLost"
    NODE_LOST = "NodeLost"
    SPOT_INTERRUPTED = "SpotInterrupted"
    CLUSTER_LOST = "ClusterLost"
    CLUSTER_MISSING = "ClusterMissing"  # a pool names a TransferCluster that does not exist
    # A TransferCluster's Ready condition
    CLUSTER_READY = "ClusterReady"
    UNREACHABLE = "Unreachable"
    KUBECONFIG_SECRET_MISSING = "KubeconfigSecretMissing"
    KUBECONFIG_INVALID = "KubeconfigInvalid"
    SECRET_OUTSIDE_NAMESPACE = "SecretOutsideOperatorNamespace"
    KUBERAY_MISSING = "KubeRayMissing"
    # GPUPool Ready=False: the pool counts only its ready nodes until the fix.
    NODE_POOL_NOT_FOUND = "NodePoolNotFound"
    INVALID_SCALING = "InvalidScaling"
    PROVISIONER_NOT_INSTALLED = "ProvisionerNotInstalled"
    POOL_READY = "PoolReady"
    # A job admitted onto nodes to be bought whose pods found no node in time.
    PROVISIONING_TIMED_OUT = "ProvisioningTimedOut"
    # A running elastic gang restarted at a larger size from its latest checkpoint.
    RESIZED = "Resized"


class UtilizationPolicy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


class NetworkPolicyScope(StrEnum):
    """Which pods may reach a job's Ray pods (engine/isolation.py): those of its namespace (one
    NetworkPolicy per namespace, the tenant boundary) or only its own (one per job)."""

    NAMESPACE = "namespace"
    JOB = "job"
