"""TransferJob + placement -> KubeRay RayJob manifest; RayJob status -> TransferJob phase."""
