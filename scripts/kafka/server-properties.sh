#!/usr/bin/env bash
# A KRaft node's server.properties (broker and controller in one), shared by
# scripts/kafka.sh (nodes on this machine) and the cluster's Kafka image
# (docker/kafka/kafka.sh), so both run Kafka with the same settings.
#   server-properties.sh NODE_ID VOTERS LISTENERS ADVERTISED DATA_DIR NODES
set -euo pipefail
node="$1" voters="$2" listeners="$3" advertised="$4" data="$5" nodes="$6"
# Three nodes or more: every topic on three, and a write needs two of them.
rf=1 isr=1
if ((nodes >= 3)); then rf=3 isr=2; fi
cat <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
