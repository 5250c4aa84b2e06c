"""Tests of the deployment files under deploy/ (compose, Prometheus, Grafana, systemd, Kubernetes)."""
