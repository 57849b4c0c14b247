"""`python -m transfer_operator.devcluster up|down|status` (same as `transferctl dev-cluster`)."""

from transfer_operator.devcluster.command import dev_cluster

if __name__ == "__main__":
    dev_cluster(prog_name="python -m transfer_operator.devcluster")
