"""Reads whole topics with kafka-python's default settings (no codec
library installed) and prints {topic: records} as JSON. Every value must be
JSON. Exits non-zero on any error, e.g. a codec it cannot read.

    python default_consumer.py BOOTSTRAP TOPIC...
"""
import json
import sys

from kafka import KafkaConsumer, TopicPartition


def read_topic(bootstrap, topic):
    # Defaults everywhere but where to start: the whole topic.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"no topic {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records = 0
        idle = 0
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=1000)
            if not batch:
                idle += 1
                if idle > 30:
                    raise SystemExit(f"{topic}: stuck before the end offsets {ends}")
                continue
            idle = 0
            for msgs in batch.values():
                for m in msgs:
                    json.loads(m.value)
                    records += 1
        return records
    finally:
        consumer.close()


def main():
    bootstrap, topics = sys.argv[1], sys.argv[2:]
    print(json.dumps({t: read_topic(bootstrap, t) for t in topics}))


if __name__ == "__main__":
    main()
