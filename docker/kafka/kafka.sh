#!/usr/bin/env bash
# One KRaft node (broker and controller), configured as scripts/kafka.sh
# configures its brokers, from KAFKA_NODE_ID, KAFKA_VOTERS (1@host:9093,…),
# KAFKA_HOST (advertised name), KAFKA_CLUSTER_ID and KAFKA_NODES.
#   kafka.sh broker          formats the data dir once, runs the node
#   kafka.sh health          exit 0 when the client port answers
set -euo pipefail
cp="/opt/kafka/libs/*"
data=/var/lib/kafka/data
case "${1:-broker}" in
  broker)
    bash /usr/local/bin/server-properties.sh "$KAFKA_NODE_ID" "$KAFKA_VOTERS" \
      "PLAINTEXT://:9092,CONTROLLER://:9093" "PLAINTEXT://$KAFKA_HOST:9092" \
      "$data" "${KAFKA_NODES:-1}" >/tmp/server.properties
    java -Xmx256m -cp "$cp" kafka.tools.StorageTool format --cluster-id "$KAFKA_CLUSTER_ID" \
      --config /tmp/server.properties --ignore-formatted >/dev/null
    exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseSerialGC -cp "$cp" kafka.Kafka /tmp/server.properties
    ;;
  health)
    exec 3<>/dev/tcp/127.0.0.1/9092
    ;;
esac
