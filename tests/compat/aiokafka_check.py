#!/usr/bin/env python3
"""aiokafka (asyncio, its own protocol code) against a broker:

- admin: create (with a config) / list / describe / delete topics, describe_cluster,
  describe_configs with synonyms, alter_configs (the non-incremental AlterConfigs: what
  it leaves out goes back to the default), create_partitions, delete_records, consumer
  group list / describe / offsets;
- an idempotent producer (enable_idempotence: InitProducerId, sequenced batches) with
  keys, headers and null values; the stored batches, read back with raw Fetch requests,
  carry the producer id the client got and sequence numbers from 0; every codec;
- a consumer without a group (assign, seek_to_beginning) that reads everything back and
  compares it, beginning/end offsets, offsets_for_times;
- a consumer group: subscribe, commit, describe while active, a new consumer resumes
  from the committed offsets, then from offsets committed explicitly with metadata.

Usage: aiokafka_check.py [BOOTSTRAP]; without BOOTSTRAP it starts a throwaway runnel
broker (RUNNEL_BIN).
"""

import asyncio
import random
import sys
import time

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import InvalidPartitionsError
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import OffsetAndMetadata

from runnel_broker import Broker, Checks

PARTITIONS = 3
N = 3000
N_CODEC = 500
TIMEOUT = 60
RUN = format(int(time.time() * 1000) % 1_000_000_000, "x")  # unique names per run
# DescribeConfigs config_source values.
DYNAMIC_TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5


def name(base):
    return f"{base}-{RUN}"


def record(i, seed):
    """Record i of a run: key, value (every 97th is null), headers."""
    rnd = random.Random(seed * 1_000_003 + i)
    key = f"k{seed}-{i}".encode()
    value = None if i % 97 == 96 else f"value-{i}-".encode() * (1 + i % 11) + rnd.randbytes(rnd.randrange(100))
    headers = [("seq", str(i).encode()), ("bin", bytes([i % 256, 0, 255]))]
    return key, value, headers


async def produce(b, topic, n, seed, start=None, compression=None):
    """Sends n records (the partition from the key), checks offsets are contiguous per
    partition; returns [(partition, offset, key, value, headers)] and the producer id."""
    producer = AIOKafkaProducer(bootstrap_servers=b, enable_idempotence=True, acks="all",
                                compression_type=compression, request_timeout_ms=30000)
    await producer.start()
    try:
        futures = []
        for i in range(n):
            key, value, headers = record(i, seed)
            futures.append(await producer.send(topic, key=key, value=value, headers=headers))
        metas = await asyncio.gather(*futures)
        pid = producer._txn_manager.producer_id  # no public accessor
    finally:
        await producer.stop()
    nxt = dict(start or {p: 0 for p in range(PARTITIONS)})
    sent = []
    for i, m in enumerate(metas):
        if m.offset != nxt[m.partition]:
            raise AssertionError(f"send #{i} to {topic} acknowledged at {m.partition}@{m.offset}, "
                                 f"expected offset {nxt[m.partition]}")
        nxt[m.partition] += 1
        sent.append((m.partition, m.offset, *record(i, seed)))
    return sent, pid


async def create_topic(admin, new_topic):
    """create_topics, then wait until describe_topics shows every partition with a leader
    (Kafka answers CreateTopics before its metadata has the topic). Returns the response."""
    resp = await admin.create_topics([new_topic])
    if resp.topic_errors[0][1] != 0:
        return resp
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        [d] = await admin.describe_topics([new_topic.name])
        if d["error_code"] == 0 and len(d["partitions"]) == new_topic.num_partitions \
                and all(p["leader"] >= 0 for p in d["partitions"]):
            return resp
        await asyncio.sleep(0.1)
    raise AssertionError(f"created {new_topic.name} but describe_topics does not show it with leaders")


def counts_of(sent):
    counts = {p: 0 for p in range(PARTITIONS)}
    for s in sent:
        counts[s[0]] += 1
    return counts


async def stored_batches(b, topic, partition, end):
    """The record batches of a partition as stored, from offset 0 to end, read with plain
    Fetch requests: what the consumer API hides (producer id, epoch, sequences)."""
    client = AIOKafkaClient(bootstrap_servers=b)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        batches = []
        nxt = 0
        while nxt < end:
            resp = await client.send(node, FetchRequest(0, 0, 4 << 20, 0, [(topic, [(partition, nxt, 4 << 20)])]))
            part = resp.topics[0][1][0]
            if part[1] != 0:
                raise AssertionError(f"raw fetch {topic}-{partition}@{nxt}: error {part[1]}")
            records = MemoryRecords(part[-1])
            before = nxt
            while records.has_next():
                batch = records.next_batch()
                if batch is None:
                    break
                if batch.next_offset > nxt:
                    batches.append((batch.base_offset, batch.next_offset, batch.producer_id, batch.producer_epoch,
                                    batch.base_sequence, batch.is_transactional))
                    nxt = batch.next_offset
            if nxt == before:
                raise AssertionError(f"raw fetch {topic}-{partition}@{nxt}: no batch")
        return batches
    finally:
        await client.close()


async def check_idempotent(c, b, topic, sent, pid, label):
    """Every stored batch carries the client's producer id, an epoch, no transaction flag,
    and sequence numbers counting the partition's records from 0."""
    counts = counts_of(sent)
    n = 0
    for p in range(PARTITIONS):
        seq = 0
        for base, nxt, bpid, epoch, bseq, txn in await stored_batches(b, topic, p, counts[p]):
            n += 1
            if bpid != pid or epoch < 0 or txn or bseq != seq or base != seq:
                raise AssertionError(f"{label}: stored batch {topic}-{p}@{base}: producer id {bpid} epoch {epoch} "
                                     f"base sequence {bseq} transactional {txn}; want id {pid}, sequence {seq}")
            seq += nxt - base
        if seq != counts[p]:
            raise AssertionError(f"{label}: stored batches of {topic}-{p} end at sequence {seq}, not {counts[p]}")
    c.check(pid is not None and pid >= 0,
            f"{label}: all {n} stored batches carry the producer id the client got ({pid}), an epoch and "
            f"sequences from 0 per partition")


async def consume_all(b, topic, want, label, c):
    """assign + seek_to_beginning (no group): read len(want) records, compare each."""
    consumer = AIOKafkaConsumer(bootstrap_servers=b, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=30000)
    await consumer.start()
    got = {p: [] for p in range(PARTITIONS)}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        total = 0
        deadline = time.time() + TIMEOUT
        while total < len(want) and time.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                got[tp.partition].extend(records)
                total += len(records)
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            got[tp.partition].extend(records)
            total += len(records)
    finally:
        await consumer.stop()
    c.check(total == len(want), f"{topic} [{label}]: consumed {len(want)} records", f"(got {total})")
    for p in range(PARTITIONS):
        w = [s for s in want if s[0] == p]
        for s, r in zip(w, got[p]):
            _, off, key, value, headers = s
            if (r.offset, r.key, r.value, list(r.headers)) != (off, key, value, headers):
                raise AssertionError(f"{topic}-{p}@{off} [{label}]: read {r.offset} {r.key!r} {r.value!r:.60} "
                                     f"{list(r.headers)}, want {key!r} {value!r:.60} {headers}")
        nulls = sum(1 for s in w if s[3] is None)
        c.ok(f"{topic}-{p} [{label}]: {len(w)} records in order, keys/values/headers identical ({nulls} null values)")


def config_entries(resp):
    """{name: (value, source, [(synonym, value, source)])} from a DescribeConfigs response."""
    [res] = resp.resources
    if res[0] != 0:
        raise AssertionError(f"describe_configs {res[3]}: error {res[0]} {res[1]}")
    return {e[0]: (e[1], e[3], [tuple(s) for s in e[5]]) for e in res[4]}


async def describe_config(admin, topic):
    [resp] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True)
    return config_entries(resp)


async def alter_config(admin, topic, configs):
    """alter_configs; once accepted, waits until describe_configs shows a change (Kafka
    applies an alter after answering it). Returns the error code."""
    before = await describe_config(admin, topic)
    [resp] = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    code = resp.resources[0][0]
    deadline = time.time() + TIMEOUT
    while code == 0 and await describe_config(admin, topic) == before:
        if time.time() > deadline:
            raise AssertionError(f"alter_configs {configs} succeeded but describe_configs shows no change")
        await asyncio.sleep(0.1)
    return code


async def admin_checks(c, admin, topic):
    cluster = await admin.describe_cluster()
    brokers = cluster["brokers"]
    c.check(len(brokers) == 1 and cluster["cluster_id"] and cluster["controller_id"] == brokers[0]["node_id"],
            "describe_cluster: one broker, a cluster id, it is the controller", f"({cluster})")
    node = brokers[0]["node_id"]

    resp = await create_topic(admin, NewTopic(topic, PARTITIONS, 1, topic_configs={"retention.ms": "3600000"}))
    c.check([tuple(t[:2]) for t in resp.topic_errors] == [(topic, 0)],
            f"create_topics({topic}, {PARTITIONS} partitions, retention.ms=3600000)", f"({resp})")
    resp = await admin.create_topics([NewTopic(topic, 1, 1)])
    c.check([tuple(t[:2]) for t in resp.topic_errors] == [(topic, 36)],
            "creating it again -> TOPIC_ALREADY_EXISTS (36)", f"({resp})")
    c.check(topic in await admin.list_topics(), "list_topics shows it")
    [desc] = await admin.describe_topics([topic])
    parts = sorted(desc["partitions"], key=lambda p: p["partition"])
    c.check(desc["error_code"] == 0 and desc["topic"] == topic and not desc["is_internal"],
            "describe_topics: no error, not internal", f"({desc})")
    c.check([(p["partition"], p["leader"], p["replicas"], p["isr"]) for p in parts]
            == [(i, node, [node], [node]) for i in range(PARTITIONS)],
            f"describe_topics: {PARTITIONS} partitions, each led by broker {node}, one replica, in ISR", f"({parts})")

    cfg = await describe_config(admin, topic)
    c.check(cfg["retention.ms"][:2] == ("3600000", DYNAMIC_TOPIC_CONFIG)
            and cfg["retention.ms"][2][:1] == [("retention.ms", "3600000", DYNAMIC_TOPIC_CONFIG)],
            "describe_configs: retention.ms=3600000, a topic override, first synonym itself", f"({cfg['retention.ms']})")
    c.check(cfg["cleanup.policy"] == ("delete", DEFAULT_CONFIG, [("log.cleanup.policy", "delete", DEFAULT_CONFIG)]),
            "describe_configs: cleanup.policy=delete, the default, synonym log.cleanup.policy",
            f"({cfg['cleanup.policy']})")
    c.check(cfg["max.message.bytes"][:2] == ("1048588", DEFAULT_CONFIG),
            "describe_configs: max.message.bytes=1048588 (default)", f"({cfg['max.message.bytes']})")

    # AlterConfigs replaces the topic's whole set of overrides.
    code = await alter_config(admin, topic, {"retention.ms": "7200000", "max.message.bytes": "2097152"})
    c.check(code == 0, "alter_configs retention.ms=7200000, max.message.bytes=2097152", f"(error {code})")
    cfg = await describe_config(admin, topic)
    c.check(cfg["retention.ms"][:2] == ("7200000", DYNAMIC_TOPIC_CONFIG)
            and cfg["max.message.bytes"][:2] == ("2097152", DYNAMIC_TOPIC_CONFIG),
            "describe_configs shows both overrides", f"({cfg['retention.ms']}, {cfg['max.message.bytes']})")
    code = await alter_config(admin, topic, {"retention.ms": "7200000"})
    cfg = await describe_config(admin, topic)
    c.check(code == 0 and cfg["max.message.bytes"][:2] == ("1048588", DEFAULT_CONFIG)
            and cfg["retention.ms"][:2] == ("7200000", DYNAMIC_TOPIC_CONFIG),
            "alter_configs without max.message.bytes puts it back to the default (non-incremental)",
            f"({cfg['max.message.bytes']})")
    code = await alter_config(admin, topic, {"retention.ms": "soon"})
    c.check(code == 40, "alter_configs retention.ms=soon -> INVALID_CONFIG (40)", f"(error {code})")

    grow = name("aio-grow")
    await create_topic(admin, NewTopic(grow, 1, 1))
    resp = await admin.create_partitions({grow: NewPartitions(3)})
    c.check([tuple(t[:2]) for t in resp.topic_errors] == [(grow, 0)], f"create_partitions {grow} 1 -> 3",
            f"({resp})")
    deadline = time.time() + TIMEOUT  # Kafka's metadata shows new partitions a little later
    while len((await admin.describe_topics([grow]))[0]["partitions"]) != 3 and time.time() < deadline:
        await asyncio.sleep(0.1)
    [d] = await admin.describe_topics([grow])
    c.check(len(d["partitions"]) == 3, "describe_topics shows 3 partitions", f"({d})")
    try:
        await admin.create_partitions({grow: NewPartitions(2)})
        raise AssertionError("shrinking partitions succeeded")
    except InvalidPartitionsError:
        c.ok("create_partitions 3 -> 2 -> InvalidPartitionsError")
    resp = await admin.delete_topics([grow])
    c.check([tuple(t) for t in resp.topic_error_codes] == [(grow, 0)], f"delete_topics({grow})", f"({resp})")


async def records_checks(c, admin, b, topic):
    await create_topic(admin, NewTopic(topic, PARTITIONS, 1))
    sent, pid = await produce(b, topic, N, 1)
    c.ok(f"produced {N} records (idempotent, acks=all) with keys, headers, null values; offsets contiguous")
    await consume_all(b, topic, sent, "none", c)
    await check_idempotent(c, b, topic, sent, pid, "idempotent producer")
    pids = {pid}
    counts = counts_of(sent)

    consumer = AIOKafkaConsumer(bootstrap_servers=b, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        c.check(all(begins[tp] == 0 for tp in tps), "beginning_offsets are 0", f"({begins})")
        c.check(all(ends[tp] == counts[tp.partition] for tp in tps), f"end_offsets = what was produced {counts}",
                f"({ends})")
    finally:
        await consumer.stop()

    tp0 = TopicPartition(topic, 0)
    cut = counts[0] // 2
    low = await admin.delete_records({tp0: RecordsToDelete(cut)})
    c.check(low == {tp0: cut}, f"delete_records({tp0} before {cut}): low watermark {cut}", f"({low})")
    consumer = AIOKafkaConsumer(bootstrap_servers=b, group_id=None)
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets([tp0])
        c.check(begins[tp0] == cut, f"beginning_offsets {tp0} = {cut} after delete_records", f"({begins})")
    finally:
        await consumer.stop()
    await consume_all(b, topic, [s for s in sent if s[0] != 0 or s[1] >= cut], "after delete_records", c)

    topics = [topic]
    for seed, codec in enumerate(("gzip", "lz4", "zstd", "snappy"), start=10):
        t = f"{topic}-{codec}"
        await create_topic(admin, NewTopic(t, PARTITIONS, 1))
        topics.append(t)
        s, p = await produce(b, t, N_CODEC, seed, compression=codec)
        c.ok(f"produced {N_CODEC} records with compression_type={codec}")
        await consume_all(b, t, s, codec, c)
        await check_idempotent(c, b, t, s, p, f"{codec} producer")
        pids.add(p)
    c.check(len(pids) == 5, "each of the 5 producers got its own producer id", f"({pids})")

    resp = await admin.delete_topics(topics)
    c.check(sorted(tuple(t) for t in resp.topic_error_codes) == sorted((t, 0) for t in topics),
            f"delete_topics({topics})", f"({resp})")
    gone = False
    for _ in range(100):
        if not set(topics) & set(await admin.list_topics()):
            gone = True
            break
        await asyncio.sleep(0.1)
    c.check(gone, "delete_topics: all gone from list_topics")
    resp = await admin.delete_topics([topic])
    c.check([tuple(t) for t in resp.topic_error_codes] == [(topic, 3)],
            "deleting it again -> UNKNOWN_TOPIC_OR_PARTITION (3)", f"({resp})")


async def timestamp_checks(c, admin, b, topic):
    await create_topic(admin, NewTopic(topic, 1, 1))
    t0 = int(time.time() * 1000) - 3_600_000
    ts = [0, 10, 20, 30, 40, 50, 90, 60, 70, 80]  # seconds after t0, per offset
    producer = AIOKafkaProducer(bootstrap_servers=b, enable_idempotence=True)
    await producer.start()
    try:
        for i, s in enumerate(ts):
            m = await producer.send_and_wait(topic, value=f"t{i}".encode(), partition=0, timestamp_ms=t0 + s * 1000)
            assert m.offset == i, (i, m)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=b, group_id=None)
    await consumer.start()
    try:
        for target, off, at in ((35, 4, 40), (0, 0, 0), (55, 6, 90), (85, 6, 90)):
            r = (await consumer.offsets_for_times({tp: t0 + target * 1000}))[tp]
            c.check(r is not None and (r.offset, r.timestamp) == (off, t0 + at * 1000),
                    f"offsets_for_times(t0+{target}s) -> offset {off} with timestamp t0+{at}s", f"({r})")
        r = (await consumer.offsets_for_times({tp: t0 + 91_000}))[tp]
        c.check(r is None, "offsets_for_times past the largest timestamp -> None", f"({r})")
    finally:
        await consumer.stop()
    await admin.delete_topics([topic])


async def group_consume(b, topic, group, n, start, label):
    """A subscribe() consumer in `group` must read exactly n records, each partition from
    start[p] on; commits and returns the consumer's view before closing."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=b, group_id=group, client_id=f"aio-{group}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        nxt = dict(start)
        got = 0
        deadline = time.time() + TIMEOUT
        while got < n and time.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if r.offset != nxt[tp.partition]:
                        raise AssertionError(f"{label}: read {tp}@{r.offset}, expected {nxt[tp.partition]}")
                    nxt[tp.partition] += 1
                    got += 1
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got += len(records)
        assignment = consumer.assignment()
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
        return got, nxt, assignment, committed, consumer
    except BaseException:
        await consumer.stop()
        raise


async def group_checks(c, admin, b, topic, group):
    await create_topic(admin, NewTopic(topic, PARTITIONS, 1))
    first, _ = await produce(b, topic, 600, 2)
    counts = counts_of(first)
    got, nxt, assignment, committed, consumer = await group_consume(b, topic, group, len(first),
                                                                    {p: 0 for p in range(PARTITIONS)}, "first")
    try:
        c.check(got == len(first), f"{group}: the subscribe() consumer read all {len(first)} records", f"({got})")
        c.check(assignment == {TopicPartition(topic, p) for p in range(PARTITIONS)},
                f"{group}: its only member has all {PARTITIONS} partitions", f"({assignment})")
        c.check(committed == counts, f"commit(): committed() = {counts}", f"({committed})")
        [desc] = await admin.describe_consumer_groups([group])
        [g] = desc.groups
        # (error_code, group, state, protocol_type, protocol, members, ...)
        c.check(tuple(g[:5]) == (0, group, "Stable", "consumer", "roundrobin") and len(g[5]) == 1
                and g[5][0][1] == f"aio-{group}",
                "describe_consumer_groups while active: Stable, consumer, roundrobin, one member (its client id)",
                f"({g[:5]}, {g[5]})")
    finally:
        await consumer.stop()
    offsets = await admin.list_consumer_group_offsets(group)
    c.check({tp.partition: om.offset for tp, om in offsets.items()} == counts,
            f"list_consumer_group_offsets {group} = {counts}", f"({offsets})")
    listed = await admin.list_consumer_groups()
    c.check((group, "consumer") in [tuple(g[:2]) for g in listed], f"list_consumer_groups shows {group}",
            f"({listed})")
    [desc] = await admin.describe_consumer_groups([group])
    c.check(desc.groups[0][2] == "Empty" and not desc.groups[0][5],
            "describe_consumer_groups after stop: Empty, no members (LeaveGroup)", f"({desc.groups[0]})")

    second, _ = await produce(b, topic, 150, 3, start=counts)
    got, nxt, _, committed, consumer = await group_consume(b, topic, group, len(second), counts, "resumed")
    try:
        c.check(got == len(second), f"{group}: a new consumer resumed from the committed offsets and read only "
                f"the {len(second)} new records", f"({got})")
        counts2 = counts_of(first + second)
        c.check(committed == counts2, f"its commit(): committed() = {counts2}", f"({committed})")
        # Commit chosen offsets with metadata: 5 records back on each partition.
        back = {TopicPartition(topic, p): OffsetAndMetadata(counts2[p] - 5, "rewound") for p in range(PARTITIONS)}
        await consumer.commit(back)
    finally:
        await consumer.stop()
    offsets = await admin.list_consumer_group_offsets(group)
    c.check({tp: (om.offset, om.metadata) for tp, om in offsets.items()}
            == {tp: (om.offset, om.metadata) for tp, om in back.items()},
            "commit(offsets with metadata): list_consumer_group_offsets shows them", f"({offsets})")
    got, _, _, _, consumer = await group_consume(b, topic, group, 5 * PARTITIONS,
                                                 {p: counts2[p] - 5 for p in range(PARTITIONS)}, "rewound")
    await consumer.stop()
    c.check(got == 5 * PARTITIONS, f"a third consumer started at the explicitly committed offsets "
            f"({5 * PARTITIONS} records)", f"({got})")
    await admin.delete_topics([topic])


async def main_async(b, c):
    admin = AIOKafkaAdminClient(bootstrap_servers=b, client_id="compat-aiokafka-admin", request_timeout_ms=30000)
    await admin.start()
    try:
        await admin_checks(c, admin, name("aio-admin"))
        await records_checks(c, admin, b, name("aio-events"))
        await timestamp_checks(c, admin, b, name("aio-times"))
        await group_checks(c, admin, b, name("aio-group"), name("aio-group"))
    finally:
        await admin.close()


def main():
    if len(sys.argv) > 2:
        raise SystemExit("usage: aiokafka_check.py [BOOTSTRAP]")
    c = Checks("aiokafka")
    print(f"== aiokafka {aiokafka.__version__}")
    if len(sys.argv) == 2:
        asyncio.run(main_async(sys.argv[1], c))
    else:
        with Broker() as broker:
            asyncio.run(main_async(broker.bootstrap, c))
    c.done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure must be loud
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
