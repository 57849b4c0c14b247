"""`transferctl` commands for a job after `kubectl apply`: get, describe, logs, cost, cancel."""
