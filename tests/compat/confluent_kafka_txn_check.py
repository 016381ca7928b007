#!/usr/bin/env python3
"""confluent-kafka (Python, librdkafka inside) transactions against runnel:
init_transactions / begin / commit / abort, with a read_committed consumer that sees only
committed records and a read_uncommitted one that sees the aborted ones too (and the last
stable offset held by an open transaction, from list_offsets at each isolation level);
zombie fencing by a second producer with the same transactional.id; and a
consume-transform-produce loop with send_offsets_to_transaction, whose every third
transaction is aborted and re-read from the committed offsets, ending with each input in
the output exactly once and the group's committed offsets at the input's ends."""

import sys
import time
from collections import Counter

import confluent_kafka
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, IsolationLevel, KafkaError,
                             KafkaException, Producer, TopicPartition, OFFSET_BEGINNING)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from runnel_broker import Broker, Checks

RUN = format(int(time.time() * 1000) % 1_000_000_000, "x")
IN_PARTITIONS = 3
N = 300


def create(admin, *topics):
    fs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics],
                             operation_timeout=30)
    for f in fs.values():
        f.result(30)


def producer(b, txn_id, **extra):
    conf = {"bootstrap.servers": b, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    return Producer(conf)


def produce(p, topic, partitions, prefix, n):
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"{prefix}-{i}", partition=i % partitions)
    left = p.flush(30)
    if left:
        raise AssertionError(f"{left} {prefix} records not delivered within 30 s")


def values(prefix, n, partitions, partition):
    return [f"{prefix}-{i}" for i in range(partition, n, partitions)]


def read_all(b, topic, partitions, isolation):
    """Every record of the topic at `isolation`, per partition in offset order, up to the
    end at that level (partition EOF: the high watermark, or the LSO for read_committed)."""
    c = Consumer({"bootstrap.servers": b, "group.id": f"ck-txn-reader-{RUN}", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    eof = set()
    deadline = time.time() + 60
    try:
        while len(eof) < partitions:
            if time.time() > deadline:
                raise AssertionError(f"reading {topic} {isolation}: no end of partitions {set(got) - eof} "
                                     "within 60 s")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            got[m.partition()].append(m.value().decode())
    finally:
        c.close()
    return got


def ends(admin, topic, partitions, isolation):
    fs = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)},
                            isolation_level=isolation, request_timeout=30)
    return {tp.partition: f.result(30).offset for tp, f in fs.items()}


def stable(admin, topic, partitions, want=None):
    """Waits until no transaction is open on the topic (LSO == high watermark) and, with
    `want`, every partition ends there: a commit or abort returns once it is decided, and
    the markers follow (as in Kafka)."""
    deadline = time.time() + 30
    while True:
        lso = ends(admin, topic, partitions, IsolationLevel.READ_COMMITTED)
        hw = ends(admin, topic, partitions, IsolationLevel.READ_UNCOMMITTED)
        if lso == hw and (want is None or all(v == want for v in hw.values())):
            return hw
        if time.time() > deadline:
            raise AssertionError(f"{topic}: the LSO {lso} and the high watermark {hw} did not both reach "
                                 f"{'the same offset' if want is None else want} within 30 s")
        time.sleep(0.05)


def committed(admin, group, topic, partitions):
    fs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=30)
    res = fs[group].result(30)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic and tp.offset >= 0}


def commit_and_abort(c, admin, b):
    topic = f"ck-txn-{RUN}"
    create(admin, (topic, 2))
    p = producer(b, f"ck-txn-basic-{RUN}")
    p.init_transactions(30)
    c.ok("init_transactions()")
    p.begin_transaction()
    produce(p, topic, 2, "commit1", 10)
    p.commit_transaction(30)
    c.ok("begin_transaction(), 10 records, commit_transaction()")

    before = stable(admin, topic, 2, want=6)
    c.check(before == {0: 6, 1: 6}, "after the commit each partition ends at 6: 5 records and the marker",
            f"(got {before})")
    p.begin_transaction()
    produce(p, topic, 2, "aborted", 10)
    lso = ends(admin, topic, 2, IsolationLevel.READ_COMMITTED)
    hw = ends(admin, topic, 2, IsolationLevel.READ_UNCOMMITTED)
    c.check(lso == before and all(hw[q] == before[q] + 5 for q in hw),
            "an open transaction holds the LSO (list_offsets read_committed) while the high watermark moves on",
            f"(LSO {lso}, HW {hw}, before {before})")
    p.abort_transaction(30)
    after = stable(admin, topic, 2, want=12)
    c.check(all(after[q] == before[q] + 6 for q in after),
            "abort_transaction(): the LSO moves past the 5 aborted records and the marker", f"(got {after})")

    p.begin_transaction()
    produce(p, topic, 2, "commit2", 10)
    p.commit_transaction(30)
    end = stable(admin, topic, 2, want=18)
    c.check(end == {0: 18, 1: 18}, "each partition ends at 18: 15 records and 3 markers", f"(got {end})")

    rc = read_all(b, topic, 2, "read_committed")
    ru = read_all(b, topic, 2, "read_uncommitted")
    for q in range(2):
        want = values("commit1", 10, 2, q) + values("commit2", 10, 2, q)
        c.check(rc[q] == want, f"read_committed {topic}-{q}: only the committed records, in order",
                f"(got {rc[q]})")
        want = values("commit1", 10, 2, q) + values("aborted", 10, 2, q) + values("commit2", 10, 2, q)
        c.check(ru[q] == want, f"read_uncommitted {topic}-{q}: the aborted records too, in order",
                f"(got {ru[q]})")


def fencing(c, admin, b):
    topic = f"ck-txn-fence-{RUN}"
    txn_id = f"ck-txn-fence-{RUN}"
    create(admin, (topic, 1))
    zombie = producer(b, txn_id)
    zombie.init_transactions(30)
    zombie.begin_transaction()
    produce(zombie, topic, 1, "zombie", 3)
    current = producer(b, txn_id)
    current.init_transactions(30)
    c.ok("a second producer with the same transactional.id: init_transactions() succeeds while the first "
         "has a transaction open")
    err = None
    try:
        zombie.commit_transaction(30)
    except KafkaException as e:
        err = e.args[0]
    c.check(err is not None and err.fatal() and err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED),
            "the first producer's commit_transaction() fails with a fatal fenced error",
            f"(got {err!r})")
    current.begin_transaction()
    produce(current, topic, 1, "current", 3)
    current.commit_transaction(30)
    c.ok("the second producer commits")
    stable(admin, topic, 1)
    rc = read_all(b, topic, 1, "read_committed")
    c.check(rc[0] == values("current", 3, 1, 0), "read_committed: only the second producer's records",
            f"(got {rc[0]})")
    ru = read_all(b, topic, 1, "read_uncommitted")
    c.check(ru[0] == values("zombie", 3, 1, 0) + values("current", 3, 1, 0),
            "read_uncommitted: the zombie's aborted records too", f"(got {ru[0]})")


def rewind(consumer):
    """After an abort: back to the committed offsets (the start where there are none)."""
    for tp in consumer.committed(consumer.assignment(), timeout=30):
        tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        consumer.seek(tp)


def exactly_once(c, admin, b):
    src = f"ck-eos-in-{RUN}"
    out = f"ck-eos-out-{RUN}"
    group = f"ck-eos-{RUN}"
    create(admin, (src, IN_PARTITIONS), (out, IN_PARTITIONS))
    plain = Producer({"bootstrap.servers": b, "enable.idempotence": True})
    for i in range(N):
        plain.produce(src, key=f"k{i}", value=f"in-{i}", partition=i % IN_PARTITIONS)
    plain.flush(30)
    in_end = ends(admin, src, IN_PARTITIONS, IsolationLevel.READ_UNCOMMITTED)
    c.check(sum(in_end.values()) == N, f"{N} input records in {src}", f"(got {in_end})")

    consumer = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe([src])
    p = producer(b, f"ck-eos-{RUN}")
    p.init_transactions(30)
    txns = commits = aborts = 0
    checked_offsets = False
    deadline = time.time() + 90
    try:
        while True:
            if time.time() > deadline:
                raise AssertionError(f"the loop did not finish within 90 s ({commits} commits, {aborts} aborts; "
                                     f"committed {committed(admin, group, src, IN_PARTITIONS)}, want {in_end})")
            msgs = consumer.consume(num_messages=20, timeout=0.5)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
            if not msgs:
                if committed(admin, group, src, IN_PARTITIONS) == in_end:
                    break
                continue
            p.begin_transaction()
            txns += 1
            nxt = {}
            for m in msgs:
                p.produce(out, key=m.key(), value=b"out-" + m.value(), partition=m.partition())
                nxt[m.partition()] = m.offset() + 1
            p.send_offsets_to_transaction([TopicPartition(src, q, o) for q, o in nxt.items()],
                                          consumer.consumer_group_metadata(), 30)
            if txns % 3 == 2:
                p.flush(30)
                before = committed(admin, group, src, IN_PARTITIONS)
                p.abort_transaction(30)
                aborts += 1
                if not checked_offsets:
                    after = committed(admin, group, src, IN_PARTITIONS)
                    c.check(after == before, "offsets sent in an aborted transaction are not applied (the "
                            f"group's committed offsets stay at {before})", f"(got {after})")
                    checked_offsets = True
                rewind(consumer)
                continue
            p.commit_transaction(30)
            commits += 1
    finally:
        consumer.close()
    c.ok(f"the loop processed the input: {txns} transactions, {commits} committed, {aborts} aborted "
         "and re-read from the committed offsets")
    c.check(aborts >= 3, "at least 3 transactions were aborted", f"(got {aborts})")
    stable(admin, out, IN_PARTITIONS)
    rc = read_all(b, out, IN_PARTITIONS, "read_committed")
    for q in range(IN_PARTITIONS):
        want = values("out-in", N, IN_PARTITIONS, q)
        dups = [v for v, k in Counter(rc[q]).items() if k > 1][:10]
        missing = [v for v in want if v not in set(rc[q])][:10]
        c.check(rc[q] == want, f"read_committed {out}-{q}: each of its {len(want)} inputs exactly once, in order",
                f"(got {len(rc[q])}; duplicates {dups}; missing {missing})")
    ru = read_all(b, out, IN_PARTITIONS, "read_uncommitted")
    total = sum(len(v) for v in ru.values())
    c.check(total > N, f"read_uncommitted {out} also has the aborted transactions' records ({total} for {N} inputs)")
    offs = committed(admin, group, src, IN_PARTITIONS)
    c.check(offs == in_end, "the group's committed offsets are the input's end offsets", f"(got {offs})")


def main():
    c = Checks("confluent-kafka-transactions")
    v = confluent_kafka.version()
    v = v[0] if isinstance(v, tuple) else v
    print(f"== confluent-kafka {v} (librdkafka {confluent_kafka.libversion()[0]})")
    with Broker(["--set", "metrics.listener=", "--set", "group.initial.rebalance.delay.ms=0"]) as broker:
        b = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": b})
        commit_and_abort(c, admin, b)
        fencing(c, admin, b)
        exactly_once(c, admin, b)
        # Destroyed before the broker stops, so that it logs no reconnect failures.
        del admin
    c.done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure must be loud
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
