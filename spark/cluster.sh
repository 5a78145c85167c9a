#!/usr/bin/env bash
# One role of the Spark standalone cluster in compose.yaml:
#   cluster.sh master          the master (7077; its web UI on 8080)
#   cluster.sh worker MASTER   a worker (SPARK_WORKER_CORES, SPARK_WORKER_MEMORY)
#   cluster.sh job             the engine (scripts/spark.sh run) on SPARK_MASTER
set -euo pipefail
# Executors and the driver reach each other by this container's address.
export SPARK_LOCAL_IP="$(hostname -i | awk '{print $1}')"
export SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-256m}"
case "${1:-job}" in
  master) exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host "$(hostname)" --port 7077 --webui-port 8080 ;;
  worker) exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --webui-port 8081 "$2" ;;
  # A restarted container keeps its files: a PID file from the last run
  # would name a live process (this one) and stop the job from starting.
  job) export VOTESTREAM_SPARK_PIDFILE=/tmp/job.pid; rm -f /tmp/job.pid; exec bash scripts/spark.sh run ;;
esac
