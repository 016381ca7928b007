'use strict';
// @confluentinc/kafka-javascript (librdkafka underneath) against a broker at argv[2],
// through its KafkaJS-compatible API: the admin calls it offers with their returned
// values (plus createPartitions from its native AdminClient, which the KafkaJS-style admin
// lacks), the default producer and an idempotent one (its producer id read from
// librdkafka's statistics), keys, headers, a null value, timestamps, each codec
// librdkafka was built with, a classic consumer group that commits, leaves and is resumed
// by a new member, and a KIP-848 group (group.protocol=consumer) doing the same and
// splitting its partitions between two members.
//   node confluent_check.js HOST:PORT

const confluent = require('@confluentinc/kafka-javascript');
const { Kafka, logLevel, CompressionTypes, ConsumerGroupStates, ConsumerGroupTypes } = confluent.KafkaJS;
const {
  assert, bootstrapFromArgs, runCheck, sleep, waitFor, rejects, byPartition, str, testRecord, assertRecordsWhole,
} = require('./lib');

const bootstrap = bootstrapFromArgs();
const run = `${Date.now().toString(36)}${process.pid}`;
const T = `ckjs-events-${run}`; // 3 partitions, 300 records placed by hand: i -> partition i % 3
const P = `ckjs-admin-${run}`; // configs and createPartitions
const Q = `ckjs-kip848-${run}`; // 4 partitions, for the KIP-848 group
const G = `ckjs-group-${run}`;
const GQ = `ckjs-group848-${run}`;
const N = 300;
const HALF = 150;
// Record i has timestamp base + i: an hour ago, well inside retention.ms and segment.ms
// (7 days; older records would roll the segment and go at the next retention check).
const base = Date.now() - 3600 * 1000;
const CLIENT_ID = 'runnel-compat-confluent';

const kafka = new Kafka({ kafkaJS: { brokers: [bootstrap], clientId: CLIENT_ID, logLevel: logLevel.WARN } });

// A producer whose librdkafka statistics (JSON, every 100 ms) land in `stats`.
function statsProducer(config) {
  const stats = [];
  const producer = kafka.producer({
    ...config,
    'statistics.interval.ms': 100,
    stats_cb: (ev) => stats.push({ at: Date.now(), s: JSON.parse(ev && ev.message !== undefined ? ev.message : ev) }),
  });
  // Statistics emitted after `since` that count at least `msgs` sent messages.
  producer.statsAfter = (since, msgs) => waitFor(`producer statistics after ${msgs} messages`,
    () => stats.find((e) => e.at > since && e.s.txmsgs >= msgs), 10000).then((e) => e.s);
  return producer;
}

// A group member (config: librdkafka properties plus a kafkaJS block) on `topic` from the
// beginning, calling eachMessage(payload, consumer) per record; returned still connected.
async function startConsumer(config, topic, eachMessage) {
  const consumer = kafka.consumer({
    ...config,
    // The KafkaJS-style consumer lets its metadata requests auto-create topics by default;
    // none of these needs it, and a late refresh could bring a deleted topic back.
    kafkaJS: { fromBeginning: true, maxWaitTimeInMs: 200, allowAutoTopicCreation: false, ...config.kafkaJS },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  // The consumer goes to eachMessage too: it can run before this function returns.
  await consumer.run({ eachMessage: (args) => eachMessage(args, consumer) });
  return consumer;
}

// admin.fetchOffsets is given partitions, not just topic names: with names it asks for all
// of the group's commits (OffsetFetch without topics), which leaves out partitions the
// group never committed, where an explicit partition comes back as offset -1001
// (librdkafka's RD_KAFKA_OFFSET_INVALID: the broker's -1).
runCheck('confluent-kafka-javascript', 300000, async (step) => {
  console.log(`  librdkafka ${confluent.librdkafkaVersion}, features: ${confluent.features.join(',')}`);
  // librdkafka's admin handle is a producer underneath, which by default lets a metadata
  // refresh for a topic it has looked up auto-create it: after deleteTopics, Kafka
  // (auto.create.topics.enable=true) then brings a deleted topic back with 1 partition.
  const admin = kafka.admin({ 'allow.auto.create.topics': false });
  await admin.connect();
  let nodeId;

  await step('admin.createTopics: true when created, false when it already exists', async () => {
    assert.equal(await admin.createTopics({
      topics: [
        { topic: T, numPartitions: 3 },
        { topic: P, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
        { topic: Q, numPartitions: 4 },
      ],
    }), true);
    assert.equal(await admin.createTopics({ topics: [{ topic: T, numPartitions: 3 }] }), false);
  });

  await step('admin.createTopics refuses replication factor 3 and a bad config, per topic', async () => {
    const bad = `ckjs-bad-${run}`;
    const rf = await rejects('replicationFactor 3', admin.createTopics({ topics: [{ topic: bad, numPartitions: 1, replicationFactor: 3 }] }),
      (e) => e.name === 'KafkaJSAggregateError');
    assert.deepEqual(rf.errors.map((e) => [e.topic, e.code]), [[bad, confluent.CODES.ERRORS.ERR_INVALID_REPLICATION_FACTOR]]);
    const cfg = await rejects('cleanup.policy=bogus', admin.createTopics({
      topics: [{ topic: bad, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'bogus' }] }],
    }), (e) => e.name === 'KafkaJSAggregateError');
    assert.deepEqual(cfg.errors.map((e) => e.code), [confluent.CODES.ERRORS.ERR_INVALID_CONFIG]);
    assert.ok(!(await admin.listTopics()).includes(bad));
  });

  await step('admin.listTopics lists the new topics', async () => {
    // createTopics does not wait for the metadata to show the topics (Kafka's can lag).
    const topics = await waitFor('the topics in listTopics', async () => {
      const now = await admin.listTopics();
      return [T, P, Q].every((t) => now.includes(t)) && now;
    }, 10000);
    assert.ok(!topics.includes('__consumer_offsets') || topics.length >= 4);
  });

  await step('admin.fetchTopicMetadata: partitions, leader, replicas, isr', async () => {
    const topics = await admin.fetchTopicMetadata({ topics: [T, Q] });
    const meta = Object.fromEntries(topics.map((t) => [t.name, t]));
    assert.deepEqual(byPartition(meta[T].partitions).map((p) => p.partitionId), [0, 1, 2]);
    assert.equal(meta[Q].partitions.length, 4);
    assert.ok(meta[T].topicId && meta[T].topicId.base64 !== 'AAAAAAAAAAAAAAAAAAAAAA', JSON.stringify(meta[T].topicId, (k, v) => (typeof v === 'bigint' ? String(v) : v)));
    assert.notEqual(meta[T].topicId.base64, meta[Q].topicId.base64);
    assert.equal(meta[T].isInternal, false);
    nodeId = meta[T].partitions[0].leader;
    assert.ok(Number.isInteger(nodeId) && nodeId >= 0, `leader ${nodeId}`);
    for (const p of [...meta[T].partitions, ...meta[Q].partitions]) {
      assert.equal(p.partitionErrorCode, 0);
      assert.equal(p.leader, nodeId);
      assert.equal(`${p.leaderNode.host}:${p.leaderNode.port}`, bootstrap);
      assert.deepEqual(p.replicas, [nodeId]);
      assert.deepEqual(p.isr, [nodeId]);
    }
    return `leader node ${nodeId}`;
  });

  await step('native AdminClient.createPartitions grows a topic; shrinking fails with INVALID_PARTITIONS', async () => {
    const native = confluent.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': CLIENT_ID });
    const createPartitions = (n) => new Promise((resolve, reject) =>
      native.createPartitions(P, n, 10000, (err) => (err ? reject(err) : resolve())));
    try {
      await createPartitions(4);
      await waitFor('4 partitions in metadata', async () => {
        const [t] = await admin.fetchTopicMetadata({ topics: [P] });
        return t.partitions.length === 4;
      });
      await rejects('shrink to 2', createPartitions(2), (e) => e.code === confluent.CODES.ERRORS.ERR_INVALID_PARTITIONS);
    } finally {
      native.disconnect();
    }
  });

  // --- produce ---------------------------------------------------------------------
  const record = testRecord(base, 'confluent');

  await step(`default producer (acks=all, not idempotent), gzip: ${N} records with keys, headers, timestamps`, async () => {
    const producer = statsProducer({ kafkaJS: { compression: CompressionTypes.GZIP, allowAutoTopicCreation: false } });
    await producer.connect();
    for (let p = 0; p < 3; p++) {
      const messages = [];
      for (let i = p; i < N; i += 3) messages.push({ ...record(i), partition: p });
      const res = await producer.send({ topic: T, messages });
      assert.deepEqual(res.map((r) => [r.topicName, r.partition, r.errorCode, r.baseOffset]), [[T, p, 0, '0']]);
    }
    const res = await producer.send({ topic: T, messages: [{ key: '', value: null, partition: 0 }] });
    assert.equal(res[0].baseOffset, '100');
    const s = await producer.statsAfter(Date.now(), N + 1);
    await producer.disconnect();
    assert.equal(s.eos, undefined, 'librdkafka reports eos statistics only for an idempotent producer');
    // gzip really ran: far fewer bytes on the wire than message bytes.
    assert.ok(s.tx_bytes * 2 < s.txmsg_bytes, `tx_bytes ${s.tx_bytes} vs txmsg_bytes ${s.txmsg_bytes}`);
    return `${s.txmsg_bytes} message bytes in ${s.tx_bytes} bytes on the wire`;
  });

  const codecs = ['snappy', 'lz4', 'zstd'];
  await step(`librdkafka was built with every codec (${codecs.join(', ')} besides gzip)`, async () => {
    // snappy and lz4 are always built in; zstd needs libzstd (Debian: libzstd-dev).
    assert.ok(confluent.features.includes('zstd'), `no zstd in ${confluent.features}: build without libzstd-dev?`);
  });

  let producerId;
  for (const codec of codecs) {
    const topic = `ckjs-${codec}-${run}`;
    await step(`idempotent producer, ${codec}: 1000 keyed records round-trip, order kept per key`, async () => {
      // The topic does not exist yet: the producer's first metadata request auto-creates it.
      const producer = statsProducer({ kafkaJS: { idempotent: true, compression: CompressionTypes[codec.toUpperCase()] } });
      await producer.connect();
      const sent = [];
      for (let i = 0; i < 1000; i++) sent.push({ key: `key-${i % 10}`, value: `${codec} record ${i} ${'x'.repeat(100)}` });
      const want = sent.map(({ key, value }) => ({ key, value })); // send() rewrites its messages
      await producer.send({ topic, messages: sent });
      // Statistics from after the delivery reports, so the bytes sent are all counted.
      const s = await producer.statsAfter(Date.now(), 1000);
      await producer.disconnect();
      assert.equal(s.eos.idemp_state, 'Assigned', JSON.stringify(s.eos));
      assert.ok(s.eos.producer_id >= 0, JSON.stringify(s.eos));
      assert.ok(s.tx_bytes * 2 < s.txmsg_bytes, `${codec}: tx_bytes ${s.tx_bytes} vs txmsg_bytes ${s.txmsg_bytes}`);
      producerId = s.eos.producer_id;

      const got = [];
      const consumer = await startConsumer({ kafkaJS: { groupId: `ckjs-reader-${codec}-${run}` } }, topic,
        async ({ message }) => { got.push({ key: str(message.key), value: str(message.value) }); });
      await waitFor('1000 records', () => got.length >= 1000, 30000);
      await consumer.disconnect();
      assert.equal(got.length, 1000);
      // The topic was auto-created with one partition: the order is the send order.
      assert.deepEqual(got, want);
      return `producer id ${s.eos.producer_id}, ${s.txmsg_bytes} -> ${s.tx_bytes} bytes`;
    });
  }

  await step('admin.fetchTopicOffsets: low 0, high = records per partition', async () => {
    const offs = byPartition(await admin.fetchTopicOffsets(T));
    assert.deepEqual(offs.map((o) => [o.partition, o.low, o.high, o.offset]),
      [[0, '0', '101', '101'], [1, '0', '100', '100'], [2, '0', '100', '100']]);
  });

  await step('admin.fetchTopicOffsetsByTimestamp: first offset at or after a time', async () => {
    const at = byPartition(await admin.fetchTopicOffsetsByTimestamp(T, base + 151));
    assert.deepEqual(at.map((o) => [o.partition, o.offset]), [[0, '51'], [1, '50'], [2, '50']]);
  });

  // --- the classic consumer group ----------------------------------------------------
  const seenA = [];
  await step(`classic group: member A reads and commits ${HALF} records one by one, then leaves`, async () => {
    const consumer = await startConsumer({ kafkaJS: { groupId: G, autoCommit: false } }, T, async ({ topic, partition, message }, self) => {
      if (seenA.length >= HALF) return;
      await self.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      seenA.push({ partition, offset: Number(message.offset), message });
    });
    await waitFor(`${HALF} records`, () => seenA.length >= HALF, 30000);
    const { groups } = await admin.describeGroups([G]);
    assert.equal(groups.length, 1);
    const g = groups[0];
    assert.ok(!g.error, JSON.stringify(g.error));
    assert.equal(g.groupId, G);
    assert.equal(g.state, ConsumerGroupStates.STABLE);
    assert.equal(g.type, ConsumerGroupTypes.CLASSIC);
    assert.equal(g.protocolType, 'consumer');
    assert.equal(g.protocol, 'roundrobin');
    assert.equal(g.members.length, 1);
    assert.equal(g.members[0].clientId, CLIENT_ID);
    assert.deepEqual(g.members[0].assignment.topicPartitions.map((tp) => [tp.topic, tp.partition]).sort(),
      [[T, 0], [T, 1], [T, 2]]);
    assert.equal(g.coordinator.id, nodeId);
    await consumer.disconnect();

    assertRecordsWhole(seenA, record, 'confluent');
  });

  const committedA = [0, 0, 0];
  await step('admin.fetchOffsets: the commits of A; the group is Empty', async () => {
    for (let p = 0; p < 3; p++) {
      const offsets = seenA.filter((r) => r.partition === p).map((r) => r.offset);
      assert.deepEqual(offsets, offsets.map((_, j) => j), `partition ${p} read out of order: ${offsets}`);
      committedA[p] = offsets.length;
    }
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [{ topic: T, partitions: [0, 1, 2] }] });
    assert.equal(t.topic, T);
    assert.deepEqual(byPartition(t.partitions).map((p) => [p.partition, p.offset]), committedA.map((n, p) => [p, n > 0 ? String(n) : '-1001'])); // librdkafka's 'no offset'
    const { groups } = await admin.describeGroups([G]);
    assert.equal(groups[0].state, ConsumerGroupStates.EMPTY);
    assert.equal(groups[0].members.length, 0);
    return `committed ${committedA.join('/')}`;
  });

  await step('classic group: member B resumes from the commits: the other records, none twice', async () => {
    const seenB = [];
    const consumer = await startConsumer({ kafkaJS: { groupId: G } }, T, async ({ partition, message }) => {
      seenB.push({ partition, offset: Number(message.offset) });
    });
    const rest = N + 1 - HALF;
    await waitFor(`${rest} records`, () => seenB.length >= rest, 30000);
    await sleep(1500);
    await consumer.disconnect(); // auto-commit: commits what it read on the way out
    assert.equal(seenB.length, rest);
    for (let p = 0; p < 3; p++) {
      const offsets = seenB.filter((r) => r.partition === p).map((r) => r.offset);
      const end = p === 0 ? 101 : 100;
      assert.deepEqual(offsets, Array.from({ length: end - committedA[p] }, (_, j) => committedA[p] + j), `partition ${p}`);
    }
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [{ topic: T, partitions: [0, 1, 2] }] });
    assert.deepEqual(byPartition(t.partitions).map((p) => p.offset), ['101', '100', '100']);
  });

  await step('admin.listGroups: the group, classic, Empty; filters by state and type', async () => {
    const { groups, errors } = await admin.listGroups();
    assert.deepEqual(errors, []);
    const g = groups.find((x) => x.groupId === G);
    assert.ok(g, JSON.stringify(groups));
    assert.equal(g.protocolType, 'consumer');
    assert.equal(g.isSimpleConsumerGroup, false);
    assert.equal(g.state, ConsumerGroupStates.EMPTY);
    assert.equal(g.type, ConsumerGroupTypes.CLASSIC);
    const stable = await admin.listGroups({ matchConsumerGroupStates: [ConsumerGroupStates.STABLE] });
    assert.ok(!stable.groups.some((x) => x.groupId === G), JSON.stringify(stable.groups));
    const modern = await admin.listGroups({ matchConsumerGroupTypes: [ConsumerGroupTypes.CONSUMER] });
    assert.ok(!modern.groups.some((x) => x.groupId === G), JSON.stringify(modern.groups));
  });

  await step('admin.deleteTopicRecords moves the low watermark', async () => {
    const res = await admin.deleteTopicRecords({ topic: T, partitions: [{ partition: 0, offset: '10' }, { partition: 2, offset: '-1' }] });
    assert.deepEqual(byPartition(res).map((r) => [r.topic, r.partition, Number(r.lowWatermark), r.error || null]),
      [[T, 0, 10, null], [T, 2, 100, null]]);
    const offs = byPartition(await admin.fetchTopicOffsets(T));
    assert.deepEqual(offs.map((o) => [o.low, o.high]), [['10', '101'], ['0', '100'], ['100', '100']]);
  });

  // --- KIP-848 ------------------------------------------------------------------------
  const kip848 = (extra = {}) => ({ 'group.protocol': 'consumer', kafkaJS: { groupId: GQ, ...extra } });
  const QN = 400;
  await step(`KIP-848 setup: ${QN} records on ${Q} (4 partitions), i -> partition i % 4`, async () => {
    const producer = kafka.producer({ kafkaJS: { idempotent: true, compression: CompressionTypes.LZ4, allowAutoTopicCreation: false } });
    await producer.connect();
    for (let p = 0; p < 4; p++) {
      const messages = [];
      for (let i = p; i < QN; i += 4) messages.push({ key: `q${i}`, value: `q${i}`, partition: p });
      await producer.send({ topic: Q, messages });
    }
    await producer.disconnect();
  });

  const seenX = [];
  await step('KIP-848 group: member X gets all 4 partitions, commits 200 records one by one, leaves', async () => {
    const consumer = await startConsumer(kip848({ autoCommit: false }), Q, async ({ topic, partition, message }, self) => {
      if (seenX.length >= 200) return;
      await self.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      seenX.push({ partition, offset: Number(message.offset), value: str(message.value) });
    });
    await waitFor('200 records', () => seenX.length >= 200, 30000);
    const assigned = consumer.assignment().map((tp) => tp.partition).sort();
    assert.deepEqual(assigned, [0, 1, 2, 3]);
    const { groups } = await admin.describeGroups([GQ]);
    const g = groups[0];
    assert.ok(!g.error, JSON.stringify(g.error));
    assert.equal(g.type, ConsumerGroupTypes.CONSUMER);
    assert.equal(g.state, ConsumerGroupStates.STABLE);
    assert.equal(g.members.length, 1);
    assert.equal(g.members[0].clientId, CLIENT_ID);
    assert.deepEqual(g.members[0].assignment.topicPartitions.map((tp) => tp.partition).sort(), [0, 1, 2, 3]);
    assert.deepEqual(g.members[0].targetAssignment.topicPartitions.map((tp) => tp.partition).sort(), [0, 1, 2, 3]);
    assert.equal(g.partitionAssignor, 'uniform'); // the broker's default server-side assignor
    assert.equal(g.protocolType, 'consumer');
    assert.equal(`${g.coordinator.host}:${g.coordinator.port}`, bootstrap);
    await consumer.disconnect();
    const [t] = await admin.fetchOffsets({ groupId: GQ, topics: [{ topic: Q, partitions: [0, 1, 2, 3] }] });
    const committed = byPartition(t.partitions).map((p) => Number(p.offset));
    for (let p = 0; p < 4; p++) {
      const offsets = seenX.filter((r) => r.partition === p).map((r) => r.offset);
      assert.deepEqual(offsets, offsets.map((_, j) => j), `partition ${p}`);
      assert.equal(committed[p], offsets.length > 0 ? offsets.length : -1001, `partition ${p} committed ${committed[p]}`);
    }
    const { groups: listed } = await admin.listGroups({ matchConsumerGroupTypes: [ConsumerGroupTypes.CONSUMER] });
    assert.ok(listed.some((x) => x.groupId === GQ), JSON.stringify(listed));
    return `committed ${committed.join('/')}`;
  });

  await step('KIP-848 group: members Y and Z split the partitions and read the rest, none twice', async () => {
    const seen = [];
    const members = [];
    for (const name of ['Y', 'Z']) {
      members.push(await startConsumer(kip848(), Q, async ({ partition, message }) => {
        seen.push({ name, partition, offset: Number(message.offset), value: str(message.value) });
      }));
    }
    // Y may read any partition until Z has joined; a partition changes hands only after
    // its old owner revoked it (and, auto-committing, committed what it read).
    const split = await waitFor('two members with two partitions each', () => {
      const a = members.map((m) => m.assignment().map((tp) => tp.partition).sort());
      return a[0].length === 2 && a[1].length === 2 && a;
    }, 30000);
    assert.deepEqual([...split[0], ...split[1]].sort(), [0, 1, 2, 3]);
    // Records produced after the split go to their partition's owner only.
    const producer = kafka.producer({ kafkaJS: { allowAutoTopicCreation: false } });
    await producer.connect();
    for (let p = 0; p < 4; p++) {
      const messages = [];
      for (let i = QN + p; i < QN + 100; i += 4) messages.push({ key: `q${i}`, value: `q${i}`, partition: p });
      await producer.send({ topic: Q, messages });
    }
    await producer.disconnect();
    const want = QN + 100 - seenX.length;
    await waitFor(`${want} records`, () => seen.length >= want, 30000);
    await sleep(1500);
    const { groups } = await admin.describeGroups([GQ]);
    assert.equal(groups[0].members.length, 2);
    assert.equal(groups[0].state, ConsumerGroupStates.STABLE);
    const described = groups[0].members.map((m) => m.assignment.topicPartitions.map((tp) => tp.partition).sort());
    assert.deepEqual(described.sort(), [...split].sort());
    for (const m of members) await m.disconnect();
    assert.equal(seen.length, want);
    const all = [...seenX.map((r) => r.value), ...seen.map((r) => r.value)].sort();
    assert.deepEqual(all, Array.from({ length: QN + 100 }, (_, i) => `q${i}`).sort());
    for (const r of seen) {
      assert.equal(r.value, `q${r.offset * 4 + r.partition}`);
      if (r.offset >= QN / 4) {
        assert.ok(split[r.name === 'Y' ? 0 : 1].includes(r.partition), `${r.name} read ${r.value} from partition ${r.partition}, not its own`);
      }
    }
    const [t] = await admin.fetchOffsets({ groupId: GQ, topics: [{ topic: Q, partitions: [0, 1, 2, 3] }] });
    assert.deepEqual(byPartition(t.partitions).map((p) => p.offset), ['125', '125', '125', '125']);
    return `Y ${split[0]}, Z ${split[1]}`;
  });

  await step('admin.deleteGroups refuses a group with a member (NON_EMPTY_GROUP), deletes empty ones', async () => {
    const busy = `ckjs-busy-${run}`;
    let got = 0;
    const consumer = await startConsumer({ kafkaJS: { groupId: busy } }, T, async () => { got += 1; });
    await waitFor('the busy member to read', () => got > 0, 30000);
    const err = await rejects('delete busy group', admin.deleteGroups([busy]), () => true);
    const groups = err.groups || [];
    assert.deepEqual(groups.map((g) => [g.groupId, g.error && g.error.code]),
      [[busy, confluent.CODES.ERRORS.ERR_NON_EMPTY_GROUP]], String(err.stack));
    await consumer.disconnect();
    const res = await admin.deleteGroups([G, GQ, busy]);
    assert.deepEqual(res.map((r) => [r.groupId, r.errorCode]).sort(), [[G, 0], [GQ, 0], [busy, 0]].sort());
    const listed = await admin.listGroups();
    assert.ok(!listed.groups.some((g) => [G, GQ, busy].includes(g.groupId)), JSON.stringify(listed.groups));
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [{ topic: T, partitions: [0, 1, 2] }] });
    assert.deepEqual(t.partitions.map((p) => p.offset), ['-1001', '-1001', '-1001']);
  });

  await step('admin.deleteTopics removes the topics; an unknown one is UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await rejects('delete an unknown topic', admin.deleteTopics({ topics: [`ckjs-nope-${run}`] }),
      (e) => e.code === confluent.CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART);
    const topics = [T, P, Q, ...codecs.map((c) => `ckjs-${c}-${run}`)];
    await admin.deleteTopics({ topics });
    let left = topics;
    await waitFor('topics gone from listTopics', async () => {
      const now = await admin.listTopics();
      left = topics.filter((t) => now.includes(t));
      return left.length === 0;
    }, 30000).catch((e) => { throw new Error(`${e.message}; still listed: ${left}`); });
  });

  await admin.disconnect();
  assert.ok(producerId >= 0);
});
