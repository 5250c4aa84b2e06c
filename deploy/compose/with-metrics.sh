#!/bin/sh
# with-metrics COMMAND…: run `cable-ingest metrics` in the background, then exec COMMAND.
#
# The worker's pool processes write their counters to files under $CABLE_INGEST_VAR_DIR/metrics,
# and `cable-ingest metrics` adds up the files of the var dir it can see. So every worker
# container (compose scales the worker service to several replicas, each with its own var dir)
# serves its own /metrics on port ${METRICS_PORT:-9808}; Prometheus finds the replicas by DNS.
# COMMAND replaces this shell, so it receives the container's SIGTERM (compose sets init: true)
# and a worker's warm shutdown is not cut short; the metrics server simply ends with the container.
set -eu
cable-ingest metrics --host 0.0.0.0 --port "${METRICS_PORT:-9808}" &
exec "$@"
