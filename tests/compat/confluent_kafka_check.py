#!/usr/bin/env python3
"""confluent-kafka (Python, librdkafka inside) against runnel: admin create / describe /
configs / delete of topics, an idempotent compressed producer with keys, headers and
timestamps, a consumer that reads everything back in order per partition, and a
consumer group (classic, then KIP-848) that commits, closes and resumes from its
commits, then splits the partitions between two members."""

import sys
import time

import confluent_kafka
from confluent_kafka import (Consumer, ConsumerGroupType, KafkaError, KafkaException,
                             Producer, TopicCollection, TopicPartition, OFFSET_BEGINNING)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from runnel_broker import Broker, Checks

PARTITIONS = 3
N = 3000


def main():
    c = Checks("confluent-kafka")
    v = confluent_kafka.version()
    v = v[0] if isinstance(v, tuple) else v
    print(f"== confluent-kafka {v} (librdkafka {confluent_kafka.libversion()[0]})")
    with Broker() as broker:
        b = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": b})
        topic = "ck-events"

        # CreateTopics, with a topic config.
        fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1,
                                           config={"retention.ms": "3600000"})],
                                 operation_timeout=30)
        fs[topic].result(30)
        c.ok(f"create_topics({topic}, {PARTITIONS} partitions, retention.ms=3600000)")

        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
            raise AssertionError("creating an existing topic succeeded")
        except KafkaException as e:
            code = e.args[0].code()
            c.check(code == KafkaError.TOPIC_ALREADY_EXISTS, "creating it again -> TOPIC_ALREADY_EXISTS",
                    f"(got {e.args[0]})")

        md = admin.list_topics(timeout=10)
        c.check(topic in md.topics, "list_topics shows it")
        c.check(len(md.topics[topic].partitions) == PARTITIONS, f"metadata: {PARTITIONS} partitions",
                f"(got {len(md.topics[topic].partitions)})")
        c.check(len(md.brokers) == 1, "metadata: one broker")

        desc = admin.describe_topics(TopicCollection([topic]))[topic].result(30)
        c.check(desc.name == topic and len(desc.partitions) == PARTITIONS,
                "describe_topics: name and partitions", f"(got {desc})")
        leader_ids = {p.leader.id for p in desc.partitions}
        c.check(len(leader_ids) == 1, "describe_topics: every partition led by the one broker",
                f"(leaders {leader_ids})")

        res = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([res])[res].result(30)
        rm = configs.get("retention.ms")
        c.check(rm is not None and rm.value == "3600000" and not rm.is_default,
                "describe_configs: retention.ms=3600000, not default", f"(got {rm})")
        cp = configs.get("cleanup.policy")
        c.check(cp is not None and cp.value == "delete" and cp.is_default,
                "describe_configs: cleanup.policy=delete by default", f"(got {cp})")

        # IncrementalAlterConfigs: SET, then APPEND to a list config; a bad value is
        # refused with INVALID_CONFIG and changes nothing.
        from confluent_kafka.admin import ConfigEntry, AlterConfigOpType
        inc = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
        admin.incremental_alter_configs([inc])[inc].result(30)
        configs = admin.describe_configs([res])[res].result(30)
        c.check(configs["segment.bytes"].value == "1048576" and configs["cleanup.policy"].value == "delete,compact",
                "incremental_alter_configs: SET segment.bytes, APPEND compact to cleanup.policy",
                f"(got {configs['segment.bytes'].value}, {configs['cleanup.policy'].value})")
        bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("segment.bytes", "-5", incremental_operation=AlterConfigOpType.SET)])
        try:
            admin.incremental_alter_configs([bad])[bad].result(30)
            raise AssertionError("segment.bytes=-5 was accepted")
        except KafkaException as e:
            c.check(e.args[0].code() == KafkaError.INVALID_CONFIG, "segment.bytes=-5 -> INVALID_CONFIG",
                    f"(got {e.args[0]})")
        configs = admin.describe_configs([res])[res].result(30)
        c.check(configs["segment.bytes"].value == "1048576", "the refused change changed nothing")
        undo = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT)])
        admin.incremental_alter_configs([undo])[undo].result(30)
        configs = admin.describe_configs([res])[res].result(30)
        c.check(configs["cleanup.policy"].value == "delete", "SUBTRACT compact from cleanup.policy",
                f"(got {configs['cleanup.policy'].value})")

        # Idempotent, compressed producer: keys, headers, explicit timestamps.
        delivered, errors = [], []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)
            else:
                delivered.append((msg.partition(), msg.offset()))

        p = Producer({"bootstrap.servers": b, "enable.idempotence": True, "acks": "all",
                      "compression.type": "lz4", "linger.ms": 5})
        base_ts = int(time.time() * 1000) - 100_000
        for i in range(N):
            while True:
                try:
                    p.produce(topic, key=f"k{i}".encode(), value=(f"v{i} " * (i % 20)).encode(),
                              partition=i % PARTITIONS, timestamp=base_ts + i,
                              headers=[("seq", str(i).encode()), ("null", None)],
                              on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        remaining = p.flush(60)
        c.check(remaining == 0 and not errors and len(delivered) == N,
                f"produced {N} messages (idempotent, lz4, acks=all), all acknowledged",
                f"(remaining {remaining}, errors {errors[:3]}, delivered {len(delivered)})")

        # Consume everything back with assign (no consumer group needed).
        cons = Consumer({"bootstrap.servers": b, "group.id": "unused-assign-only",
                         "enable.auto.commit": False, "enable.auto.offset.store": False})
        cons.assign([TopicPartition(topic, part, OFFSET_BEGINNING) for part in range(PARTITIONS)])
        got = {part: [] for part in range(PARTITIONS)}
        deadline = time.time() + 60
        total = 0
        while total < N and time.time() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise AssertionError(f"consumer error: {m.error()}")
            got[m.partition()].append(m)
            total += 1
        c.check(total == N, f"consumed {N} messages", f"(got {total})")
        for part, msgs in got.items():
            want = [i for i in range(N) if i % PARTITIONS == part]
            for off, (i, m) in enumerate(zip(want, msgs)):
                assert m.offset() == off, (part, off, m.offset())
                assert m.key() == f"k{i}".encode(), (part, off, m.key())
                assert m.value() == (f"v{i} " * (i % 20)).encode(), (part, off, m.value())
                assert m.headers() == [("seq", str(i).encode()), ("null", None)], m.headers()
                assert m.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, base_ts + i), m.timestamp()
            c.check(len(msgs) == len(want), f"partition {part}: {len(want)} messages in order, "
                    "keys/values/headers/timestamps identical")
            low, high = cons.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            c.check((low, high) == (0, len(want)), f"partition {part}: watermarks (0, {len(want)})",
                    f"(got {(low, high)})")

        # ListOffsets by timestamp.
        ts_i = 1500  # partition 0 holds i = 0, 3, 6, ...; offset of i=1500 is 500
        found = cons.offsets_for_times([TopicPartition(topic, 0, base_ts + ts_i)], timeout=10)
        c.check(found[0].offset == ts_i // PARTITIONS, "offsets_for_times finds the first offset at a timestamp",
                f"(got {found[0].offset})")
        cons.close()

        # DeleteTopics.
        admin.delete_topics([topic], operation_timeout=30)[topic].result(30)
        gone = False
        for _ in range(50):
            if topic not in admin.list_topics(timeout=10).topics:
                gone = True
                break
            time.sleep(0.1)
        c.check(gone, "delete_topics: the topic is gone from metadata")
        try:
            admin.delete_topics([topic])[topic].result(30)
            raise AssertionError("deleting a missing topic succeeded")
        except KafkaException as e:
            c.check(e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART,
                    "deleting it again -> UNKNOWN_TOPIC_OR_PARTITION", f"(got {e.args[0]})")

        for protocol in ("classic", "consumer"):
            group_commit_resume(c, b, admin, protocol)
    c.done()


def poll_values(consumer, want, seconds):
    """Poll until `want` records came (or the time is up); their values as ints."""
    got = []
    deadline = time.time() + seconds
    while len(got) < want and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise AssertionError(f"consumer error: {m.error()}")
        got.append(int(m.value()))
    return got


def group_commit_resume(c, b, admin, protocol):
    """A group (`group.protocol` classic or consumer, KIP-848) consumes half a topic,
    commits and closes; a new member resumes from the commits with nothing lost or
    repeated; then two members split the partitions."""
    topic, group, total = f"ck-group-{protocol}", f"ck-group-{protocol}", 400
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": b})
    for i in range(total):
        p.produce(topic, value=str(i).encode(), partition=i % 2)
    c.check(p.flush(30) == 0, f"{protocol} group: {total} records produced to 2 partitions")
    conf = {"bootstrap.servers": b, "group.id": group, "group.protocol": protocol,
            "auto.offset.reset": "earliest", "enable.auto.commit": False}

    first = Consumer(conf)
    first.subscribe([topic])
    seen = poll_values(first, total // 2, 60)
    first.commit(asynchronous=False)
    committed = first.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    first.close()
    c.check(len(seen) == total // 2 and sum(max(tp.offset, 0) for tp in committed) == total // 2,
            f"{protocol} group: consumed {total // 2}, committed offsets summing to {total // 2}",
            f"(consumed {len(seen)}, committed {[(tp.partition, tp.offset) for tp in committed]})")
    listed = admin.list_consumer_group_offsets(
        [confluent_kafka.ConsumerGroupTopicPartitions(group)])[group].result(30)
    c.check(sum(max(tp.offset, 0) for tp in listed.topic_partitions) == total // 2,
            f"{protocol} group: list_consumer_group_offsets shows the commits",
            f"(got {[(tp.partition, tp.offset) for tp in listed.topic_partitions]})")

    resumed = Consumer(conf)
    resumed.subscribe([topic])
    rest = poll_values(resumed, total - len(seen), 60)
    rest += poll_values(resumed, 1, 2)  # nothing more may come
    resumed.commit(asynchronous=False)
    c.check(sorted(seen + rest) == list(range(total)),
            f"{protocol} group: a new member resumed from the commits, nothing lost or repeated",
            f"(first {len(seen)}, then {len(rest)}, distinct {len(set(seen + rest))})")

    # Two members: each owns one partition, and no partition has two owners.
    other = Consumer(conf)
    other.subscribe([topic])
    deadline = time.time() + 60
    owned = ([], [])
    while time.time() < deadline:
        for consumer in (resumed, other):
            consumer.poll(0.2)
        owned = tuple(sorted(tp.partition for tp in m.assignment()) for m in (resumed, other))
        if sorted(owned[0] + owned[1]) == [0, 1] and owned[0] and owned[1]:
            break
    c.check(sorted(owned[0] + owned[1]) == [0, 1] and owned[0] and owned[1],
            f"{protocol} group: two members own one partition each", f"(got {owned})")
    desc = admin.describe_consumer_groups([group])[group].result(30)
    want_type = ConsumerGroupType.CONSUMER if protocol == "consumer" else ConsumerGroupType.CLASSIC
    c.check(len(desc.members) == 2 and desc.type == want_type,
            f"{protocol} group: describe_consumer_groups shows 2 members, type {want_type.name}",
            f"(got {len(desc.members)} members, type {desc.type}, state {desc.state})")
    other.close()
    resumed.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure must be loud
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
