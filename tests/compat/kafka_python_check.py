#!/usr/bin/env python3
"""kafka-python (pure Python, its own protocol code) against runnel: admin create /
describe / configs / delete of topics, a gzip producer with keys and headers, and a
consumer that reads everything back in order per partition."""

import sys
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from runnel_broker import Broker, Checks

PARTITIONS = 3
N = 2000


def main():
    c = Checks("kafka-python")
    print(f"== kafka-python {kafka.__version__}")
    with Broker() as broker:
        b = broker.bootstrap
        admin = KafkaAdminClient(bootstrap_servers=b, client_id="compat-admin",
                                 request_timeout_ms=30000)
        topic = "kp-events"

        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1,
                                     "configs": {"retention.ms": "3600000"}}},
                            timeout_ms=30000, wait_for_metadata=True)
        c.ok(f"create_topics({topic}, {PARTITIONS} partitions, retention.ms=3600000)")

        try:
            admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
            raise AssertionError("creating an existing topic succeeded")
        except TopicAlreadyExistsError:
            c.ok("creating it again -> TopicAlreadyExistsError")

        c.check(topic in admin.list_topics(), "list_topics shows it")
        [desc] = admin.describe_topics([topic])
        c.check(desc["name"] == topic and desc["error_code"] == 0, "describe_topics: no error", f"({desc})")
        c.check(len(desc["partitions"]) == PARTITIONS, f"describe_topics: {PARTITIONS} partitions",
                f"({desc['partitions']})")
        leaders = {p["leader_id"] for p in desc["partitions"]}
        c.check(len(leaders) == 1 and -1 not in leaders, "describe_topics: every partition has the one leader",
                f"({leaders})")

        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                         config_filter="all")
        flat = configs["topic"][topic] if "topic" in configs else configs
        c.check(flat.get("retention.ms", {}).get("value") == "3600000",
                "describe_configs: retention.ms=3600000", f"({flat.get('retention.ms')})")
        c.check(flat.get("cleanup.policy", {}).get("value") == "delete",
                "describe_configs: cleanup.policy=delete", f"({flat.get('cleanup.policy')})")

        producer = KafkaProducer(bootstrap_servers=b, acks="all", compression_type="gzip",
                                 linger_ms=5, request_timeout_ms=30000)
        futures = []
        for i in range(N):
            futures.append(producer.send(topic, key=f"k{i}".encode(), value=f"value-{i}".encode() * (i % 7 + 1),
                                         partition=i % PARTITIONS, headers=[("seq", str(i).encode())]))
        producer.flush(60)
        metas = [f.get(timeout=30) for f in futures]
        for i, m in enumerate(metas):
            assert m.partition == i % PARTITIONS and m.offset == i // PARTITIONS, (i, m)
        c.ok(f"produced {N} messages (gzip, acks=all) at the expected offsets")
        # A null value (tombstone) and a null key.
        tomb = producer.send(topic, key=b"tomb", value=None, partition=0).get(timeout=30)
        nokey = producer.send(topic, key=None, value=b"no key", partition=0).get(timeout=30)
        c.check(tomb.offset + 1 == nokey.offset, "null value and null key produced")
        producer.close(10)

        consumer = KafkaConsumer(bootstrap_servers=b, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", request_timeout_ms=30000)
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = {p: [] for p in range(PARTITIONS)}
        want_total = N + 2
        total = 0
        deadline = time.time() + 60
        while total < want_total and time.time() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                got[tp.partition].extend(records)
                total += len(records)
        c.check(total == want_total, f"consumed {want_total} messages", f"(got {total})")
        for p, records in got.items():
            want = [i for i in range(N) if i % PARTITIONS == p]
            for off, (i, r) in enumerate(zip(want, records)):
                assert r.offset == off, (p, off, r.offset)
                assert r.key == f"k{i}".encode(), (p, off, r.key)
                assert r.value == f"value-{i}".encode() * (i % 7 + 1), (p, off, r.value)
                assert list(r.headers) == [("seq", str(i).encode())], (p, off, r.headers)
            c.check(all(r.offset == k for k, r in enumerate(records[: len(want)])),
                    f"partition {p}: {len(want)} messages in order, keys/values/headers identical")
        extra = got[0][len([i for i in range(N) if i % PARTITIONS == 0]):]
        c.check([(r.key, r.value) for r in extra] == [(b"tomb", None), (None, b"no key")],
                "null value and null key read back as null", f"({[(r.key, r.value) for r in extra]})")
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        c.check(all(begins[tp] == 0 for tp in tps), "beginning_offsets are 0", f"({begins})")
        c.check(ends[tps[0]] == len(got[0]) and ends[tps[1]] == len(got[1]),
                "end_offsets match what was consumed", f"({ends})")
        consumer.close()

        admin.delete_topics([topic], timeout_ms=30000)
        gone = False
        for _ in range(50):
            if topic not in admin.list_topics():
                gone = True
                break
            time.sleep(0.1)
        c.check(gone, "delete_topics: the topic is gone")
        try:
            admin.delete_topics([topic], timeout_ms=30000)
            raise AssertionError("deleting a missing topic succeeded")
        except UnknownTopicOrPartitionError:
            c.ok("deleting it again -> UnknownTopicOrPartitionError")
        admin.close()
    c.done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure must be loud
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
