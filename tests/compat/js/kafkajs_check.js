'use strict';
// kafkajs (pure JavaScript client) against a broker at argv[2]: admin calls with their
// returned values, the default producer and an idempotent one, keys, headers, a null
// value, timestamps, gzip and snappy, and a consumer group that commits, leaves and is
// resumed by a new member from the committed offsets (nothing lost or repeated).
// kafkajs implements only the classic group protocol (no KIP-848 group.protocol=consumer).
//   node kafkajs_check.js HOST:PORT

const {
  Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes, Partitioners,
} = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const {
  assert, bootstrapFromArgs, runCheck, sleep, waitFor, rejects, byPartition, str, testRecord, assertRecordsWhole,
} = require('./lib');

const bootstrap = bootstrapFromArgs();
// Names are unique per run, so the check can run twice against one long-lived broker.
const run = `${Date.now().toString(36)}${process.pid}`;
const T = `kjs-events-${run}`; // 3 partitions, 300 records placed by hand: i -> partition i % 3
const K = `kjs-keyed-${run}`; // 3 partitions, keyed records from the idempotent producer
const P = `kjs-admin-${run}`; // for configs and createPartitions
const G = `kjs-group-${run}`;
const N = 300;
const HALF = 150;
// Record i has timestamp base + i: an hour ago, well inside retention.ms and segment.ms
// (7 days; older records would roll the segment and go at the next retention check).
const base = Date.now() - 3600 * 1000;

// Count codec calls: the client really compressed (producer) and really got compressed
// batches back from the broker and decoded them (consumer).
const codecCalls = { gzip: { compress: 0, decompress: 0 }, snappy: { compress: 0, decompress: 0 } };
function counted(name, factory) {
  return () => {
    const codec = factory();
    return {
      async compress(encoder) {
        codecCalls[name].compress += 1;
        return codec.compress(encoder);
      },
      async decompress(buffer) {
        codecCalls[name].decompress += 1;
        return codec.decompress(buffer);
      },
    };
  };
}
CompressionCodecs[CompressionTypes.GZIP] = counted('gzip', CompressionCodecs[CompressionTypes.GZIP]);
CompressionCodecs[CompressionTypes.Snappy] = counted('snappy', SnappyCodec);

// kafkajs logs every error response at ERROR, the ones this check provokes included; the
// errors that matter surface as exceptions, so drop those lines and print the rest.
// KAFKAJS_CHECK_DEBUG=1 prints everything, at debug level.
const debug = process.env.KAFKAJS_CHECK_DEBUG === '1';
const logCreator = () => ({ namespace, level, log }) => {
  if (!debug && log.message.startsWith('Response ') && namespace === 'Connection') return;
  const { message, ...extra } = log;
  console.error(`kafkajs ${level} [${namespace}] ${message} ${JSON.stringify(extra)}`);
};

const kafka = new Kafka({
  clientId: 'runnel-compat-kafkajs',
  brokers: [bootstrap],
  logLevel: debug ? logLevel.DEBUG : logLevel.WARN,
  logCreator,
});


// A group member of `groupId` on `topic` from the beginning, calling
// eachMessage(payload, consumer) per record (with auto-commit unless autoCommit is
// false); returned still connected so the caller can inspect the group and disconnect it.
async function startConsumer(groupId, topic, { autoCommit = true } = {}, eachMessage) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // The consumer goes to eachMessage too: it can run before this function returns.
  await consumer.run({ autoCommit, eachMessage: (args) => eachMessage(args, consumer) });
  return consumer;
}

runCheck('kafkajs', 240000, async (step) => {
  const admin = kafka.admin();
  await admin.connect();
  let nodeId;

  await step('admin.describeCluster: one broker at the bootstrap address', async () => {
    const c = await admin.describeCluster();
    assert.equal(c.brokers.length, 1, JSON.stringify(c));
    const [host, port] = bootstrap.split(':');
    assert.equal(c.brokers[0].port, Number(port));
    assert.ok(c.brokers[0].host === host || (host === 'localhost' && c.brokers[0].host === '127.0.0.1'), c.brokers[0].host);
    assert.equal(c.controller, c.brokers[0].nodeId);
    assert.equal(typeof c.clusterId, 'string');
    assert.ok(c.clusterId.length > 0);
    nodeId = c.brokers[0].nodeId;
    return `node ${nodeId}, cluster ${c.clusterId}`;
  });

  await step('admin.createTopics: true when created, false when it already exists', async () => {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: T, numPartitions: 3 },
        { topic: K, numPartitions: 3 },
        { topic: P, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
      ],
    });
    assert.equal(created, true);
    assert.equal(await admin.createTopics({ topics: [{ topic: T, numPartitions: 3 }] }), false);
  });

  await step('admin.listTopics lists the new topics', async () => {
    const topics = await admin.listTopics();
    for (const t of [T, K, P]) assert.ok(topics.includes(t), `${t} missing from ${topics}`);
  });

  await step('admin.fetchTopicMetadata: partitions, leader, replicas, isr', async () => {
    const { topics } = await admin.fetchTopicMetadata({ topics: [T, P] });
    const meta = Object.fromEntries(topics.map((t) => [t.name, t]));
    assert.equal(meta[T].partitions.length, 3);
    assert.equal(meta[P].partitions.length, 1);
    for (const p of byPartition(meta[T].partitions)) {
      assert.equal(p.partitionErrorCode, 0);
      assert.equal(p.leader, nodeId);
      assert.deepEqual(p.replicas, [nodeId]);
      assert.deepEqual(p.isr, [nodeId]);
    }
    assert.deepEqual(byPartition(meta[T].partitions).map((p) => p.partitionId), [0, 1, 2]);
  });

  const topicConfigs = async (topic, names) => {
    const r = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
    });
    assert.equal(r.resources.length, 1);
    assert.equal(r.resources[0].errorCode, 0);
    return Object.fromEntries(r.resources[0].configEntries.map((e) => [e.configName, e]));
  };

  await step('admin.describeConfigs: a topic override and a default', async () => {
    const c = await topicConfigs(P, ['retention.ms', 'cleanup.policy']);
    assert.equal(c['retention.ms'].configValue, '3600000');
    assert.equal(c['retention.ms'].isDefault, false);
    assert.equal(c['retention.ms'].configSource, 1); // DYNAMIC_TOPIC_CONFIG
    assert.equal(c['cleanup.policy'].configValue, 'delete');
    assert.equal(c['cleanup.policy'].isDefault, true);
    assert.equal(Object.keys(c).length, 2, JSON.stringify(Object.keys(c)));
  });

  await step('admin.describeConfigs: a broker config', async () => {
    const r = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: String(nodeId), configNames: ['num.partitions'] }],
    });
    assert.equal(r.resources[0].errorCode, 0);
    const [e] = r.resources[0].configEntries;
    assert.equal(e.configName, 'num.partitions');
    assert.equal(e.configValue, '1');
  });

  await step('admin.alterConfigs sets topic configs (and replaces the earlier override)', async () => {
    const r = await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC,
        name: P,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }, { name: 'max.message.bytes', value: '200000' }],
      }],
    });
    assert.equal(r.resources.length, 1);
    assert.equal(r.resources[0].errorCode, 0);
    // Kafka's brokers learn the change from the controller's log a moment later.
    const c = await waitFor('the new configs in describeConfigs', async () => {
      const now = await topicConfigs(P, ['cleanup.policy', 'max.message.bytes', 'retention.ms']);
      return now['cleanup.policy'].configValue === 'compact' && now;
    }, 10000);
    assert.equal(c['max.message.bytes'].configValue, '200000');
    // AlterConfigs (not incremental) sets the whole set: the retention.ms override is gone.
    assert.equal(c['retention.ms'].configValue, '604800000');
    assert.equal(c['retention.ms'].isDefault, true);
  });

  await step('admin.alterConfigs refuses a bad value with INVALID_CONFIG', async () => {
    await rejects('cleanup.policy=bogus', admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: P, configEntries: [{ name: 'cleanup.policy', value: 'bogus' }] }],
    }), (e) => e.type === 'INVALID_CONFIG');
    const c = await topicConfigs(P, ['cleanup.policy']);
    assert.equal(c['cleanup.policy'].configValue, 'compact');
  });

  await step('admin.createPartitions grows a topic; shrinking is INVALID_PARTITIONS', async () => {
    await admin.createPartitions({ topicPartitions: [{ topic: P, count: 4 }] });
    const meta = await waitFor('4 partitions in metadata', async () => {
      const { topics } = await admin.fetchTopicMetadata({ topics: [P] });
      return topics[0].partitions.length === 4 && topics[0];
    });
    assert.deepEqual(byPartition(meta.partitions).map((p) => [p.partitionId, p.leader]), [0, 1, 2, 3].map((i) => [i, nodeId]));
    await rejects('count 2', admin.createPartitions({ topicPartitions: [{ topic: P, count: 2 }] }),
      (e) => e.type === 'INVALID_PARTITIONS');
  });

  // --- produce ---------------------------------------------------------------------
  const record = testRecord(base, 'kafkajs');

  await step(`default producer (acks=all, not idempotent), gzip: ${N} records with keys, headers, timestamps`, async () => {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    // Three sends, one per partition, so record i sits at offset floor(i / 3).
    for (let p = 0; p < 3; p++) {
      const messages = [];
      for (let i = p; i < N; i += 3) messages.push({ ...record(i), partition: p });
      const res = await producer.send({ topic: T, compression: CompressionTypes.GZIP, messages });
      assert.equal(res.length, 1, JSON.stringify(res));
      assert.equal(res[0].topicName, T);
      assert.equal(res[0].partition, p);
      assert.equal(res[0].errorCode, 0);
      assert.equal(res[0].baseOffset, '0');
    }
    // A null value (tombstone) and an empty key, past the 300.
    const res = await producer.send({ topic: T, messages: [{ key: '', value: null, partition: 0 }] });
    assert.equal(res[0].baseOffset, '100');
    await producer.disconnect();
    assert.equal(codecCalls.gzip.compress, 3);
  });

  const keyedPartition = new Map();
  await step('idempotent producer, snappy, keys to the default partitioner', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    for (let round = 0; round < 5; round++) {
      const messages = [];
      for (let i = 0; i < 40; i++) messages.push({ key: `key-${i % 20}`, value: `r${round}-${i}` });
      const res = await producer.send({ topic: K, compression: CompressionTypes.Snappy, messages });
      for (const r of res) assert.equal(r.errorCode, 0);
    }
    await producer.disconnect();
    assert.ok(codecCalls.snappy.compress >= 5, JSON.stringify(codecCalls));
  });

  await step('admin.fetchTopicOffsets: low 0, high = records per partition', async () => {
    const offs = byPartition(await admin.fetchTopicOffsets(T));
    assert.deepEqual(offs.map((o) => [o.partition, o.low, o.high, o.offset]),
      [[0, '0', '101', '101'], [1, '0', '100', '100'], [2, '0', '100', '100']]);
    const keyed = await admin.fetchTopicOffsets(K);
    assert.equal(keyed.reduce((s, o) => s + Number(o.high), 0), 200);
  });

  await step('admin.fetchTopicOffsetsByTimestamp: first offset at or after a time', async () => {
    // Record i is at partition i % 3, offset floor(i / 3), time base + i.
    const at = byPartition(await admin.fetchTopicOffsetsByTimestamp(T, base + 151));
    assert.deepEqual(at.map((o) => [o.partition, o.offset]), [[0, '51'], [1, '50'], [2, '50']]);
  });

  await step('the idempotent producer\'s batches carry a producer id and sequences; the keyed records kept their order per key', async () => {
    const seen = [];
    const ids = new Set();
    const consumer = await startConsumer(`kjs-keyed-reader-${run}`, K, {}, async ({ partition, message }) => {
      ids.add(`${message.batchContext.producerId}/${message.batchContext.producerEpoch}`);
      assert.ok(message.batchContext.firstSequence >= 0, JSON.stringify(message.batchContext));
      seen.push({ partition, key: str(message.key), value: str(message.value) });
    });
    await waitFor('200 keyed records', () => seen.length >= 200, 30000);
    await consumer.disconnect();
    assert.equal(seen.length, 200);
    assert.equal(ids.size, 1, [...ids].join());
    const [pid] = [...ids];
    assert.notEqual(pid.split('/')[0], '-1');
    for (const r of seen) {
      if (!keyedPartition.has(r.key)) keyedPartition.set(r.key, r.partition);
      assert.equal(keyedPartition.get(r.key), r.partition, `key ${r.key} in two partitions`);
    }
    for (let k = 0; k < 20; k++) {
      const values = seen.filter((r) => r.key === `key-${k}`).map((r) => r.value);
      const want = [];
      for (let round = 0; round < 5; round++) want.push(`r${round}-${k}`, `r${round}-${k + 20}`);
      assert.deepEqual(values, want);
    }
    assert.ok(new Set(keyedPartition.values()).size > 1, 'all keys went to one partition');
    assert.ok(codecCalls.snappy.decompress >= 1, JSON.stringify(codecCalls));
    return `producer id/epoch ${pid}`;
  });

  // --- the consumer group ----------------------------------------------------------
  const seenA = [];
  await step(`group member A reads and commits ${HALF} records one by one, then leaves`, async () => {
    const consumer = await startConsumer(G, T, { autoCommit: false }, async ({ topic, partition, message }, self) => {
      if (seenA.length >= HALF) return; // past the cap: neither kept nor committed
      await self.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      seenA.push({ partition, offset: Number(message.offset), message });
    });
    await waitFor(`${HALF} records`, () => seenA.length >= HALF, 30000).catch((e) => {
      throw new Error(`${e.message}; read ${seenA.length}`);
    });

    const { groups } = await admin.describeGroups([G]);
    assert.equal(groups.length, 1);
    assert.equal(groups[0].groupId, G);
    assert.equal(groups[0].errorCode, 0);
    assert.equal(groups[0].state, 'Stable');
    assert.equal(groups[0].protocolType, 'consumer');
    assert.equal(groups[0].protocol, 'RoundRobinAssigner');
    assert.equal(groups[0].members.length, 1);
    assert.equal(groups[0].members[0].clientId, 'runnel-compat-kafkajs');
    await consumer.disconnect();

    // Every record was read whole: key, value, headers (one repeated), timestamp.
    assertRecordsWhole(seenA, record, 'kafkajs');
    assert.ok(codecCalls.gzip.decompress >= 1, JSON.stringify(codecCalls));
  });

  const committedA = [0, 0, 0];
  await step('admin.fetchOffsets: the commits of A, offset after the last record read per partition', async () => {
    for (let p = 0; p < 3; p++) {
      const offsets = seenA.filter((r) => r.partition === p).map((r) => r.offset);
      assert.deepEqual(offsets, offsets.map((_, j) => j), `partition ${p} read out of order: ${offsets}`);
      committedA[p] = offsets.length;
    }
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.equal(t.topic, T);
    assert.deepEqual(byPartition(t.partitions).map((p) => [p.partition, p.offset]), committedA.map((n, p) => [p, n > 0 ? String(n) : '-1'])); // -1: nothing committed
    const { groups } = await admin.describeGroups([G]);
    assert.equal(groups[0].state, 'Empty');
    assert.equal(groups[0].members.length, 0);
    return `committed ${committedA.join('/')}`;
  });

  await step('group member B resumes from the commits: the other records, none twice', async () => {
    const seenB = [];
    const consumer = await startConsumer(G, T, {}, async ({ partition, message }) => {
      seenB.push({ partition, offset: Number(message.offset) });
    });
    const rest = N + 1 - HALF;
    await waitFor(`${rest} records`, () => seenB.length >= rest, 30000);
    await sleep(1500); // anything repeated or extra would arrive now
    await consumer.disconnect();
    assert.equal(seenB.length, rest);
    for (let p = 0; p < 3; p++) {
      const offsets = seenB.filter((r) => r.partition === p).map((r) => r.offset);
      const end = p === 0 ? 101 : 100;
      assert.deepEqual(offsets, Array.from({ length: end - committedA[p] }, (_, j) => committedA[p] + j), `partition ${p}`);
    }
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.deepEqual(byPartition(t.partitions).map((p) => p.offset), ['101', '100', '100']);
  });

  await step('admin.listGroups lists the group as a consumer group', async () => {
    const { groups } = await admin.listGroups();
    const g = groups.find((x) => x.groupId === G);
    assert.ok(g, JSON.stringify(groups));
    assert.equal(g.protocolType, 'consumer');
  });

  await step('admin.setOffsets moves one partition; a new member starts there', async () => {
    await admin.setOffsets({ groupId: G, topic: T, partitions: [{ partition: 0, offset: '42' }] });
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.deepEqual(byPartition(t.partitions).map((p) => p.offset), ['42', '100', '100']);
    const seen = [];
    const consumer = await startConsumer(G, T, {}, async ({ partition, message }) => {
      seen.push([partition, Number(message.offset)]);
    });
    await waitFor('59 records', () => seen.length >= 59, 30000);
    await sleep(1000);
    await consumer.disconnect();
    assert.deepEqual(seen, Array.from({ length: 59 }, (_, j) => [0, 42 + j]));
  });

  await step('admin.deleteTopicRecords moves the low watermark', async () => {
    await admin.deleteTopicRecords({ topic: T, partitions: [{ partition: 0, offset: '10' }, { partition: 2, offset: '-1' }] });
    const offs = byPartition(await admin.fetchTopicOffsets(T));
    assert.deepEqual(offs.map((o) => [o.low, o.high]), [['10', '101'], ['0', '100'], ['100', '100']]);
  });

  await step('admin.resetOffsets to the earliest: a new member reads from the low watermarks', async () => {
    // kafkajs commits the sentinels themselves: -2 (earliest) or -1 (latest).
    await admin.resetOffsets({ groupId: G, topic: T });
    let [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.deepEqual(t.partitions.map((p) => p.offset), ['-1', '-1', '-1']);
    await admin.resetOffsets({ groupId: G, topic: T, earliest: true });
    [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.deepEqual(t.partitions.map((p) => p.offset), ['-2', '-2', '-2']);
    const seen = [];
    const consumer = await startConsumer(G, T, {}, async ({ partition, message }) => {
      seen.push([partition, Number(message.offset)]);
    });
    const want = [...Array.from({ length: 91 }, (_, j) => [0, 10 + j]), ...Array.from({ length: 100 }, (_, j) => [1, j])];
    await waitFor(`${want.length} records`, () => seen.length >= want.length, 30000);
    await sleep(1000);
    await consumer.disconnect();
    assert.deepEqual(seen.sort((a, b) => a[0] - b[0] || a[1] - b[1]), want);
    [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    // Partition 2 had nothing left to read, so nothing replaced its -2.
    assert.deepEqual(byPartition(t.partitions).map((p) => p.offset), ['101', '100', '-2']);
  });

  await step('admin.deleteGroups refuses a group with a member (NON_EMPTY_GROUP), deletes an empty one', async () => {
    const busy = `kjs-busy-${run}`;
    let got = 0;
    const consumer = await startConsumer(busy, T, {}, async () => { got += 1; });
    await waitFor('the busy member to read', () => got > 0, 30000);
    const err = await rejects('delete busy group', admin.deleteGroups([busy]), (e) => e.name === 'KafkaJSDeleteGroupsError');
    assert.deepEqual(err.groups.map((g) => [g.groupId, g.error && g.error.type]), [[busy, 'NON_EMPTY_GROUP']]);
    await consumer.disconnect();

    const res = await admin.deleteGroups([G, busy]);
    assert.deepEqual(res.map((r) => [r.groupId, r.errorCode]).sort(), [[G, 0], [busy, 0]].sort());
    const { groups } = await admin.listGroups();
    assert.ok(!groups.some((g) => g.groupId === G || g.groupId === busy), JSON.stringify(groups));
    const [t] = await admin.fetchOffsets({ groupId: G, topics: [T] });
    assert.deepEqual(t.partitions.map((p) => p.offset), ['-1', '-1', '-1']);
  });

  await step('admin.deleteTopics removes the topics', async () => {
    await admin.deleteTopics({ topics: [T, K, P] });
    let left = [T, K, P];
    await waitFor('topics gone from listTopics', async () => {
      const topics = await admin.listTopics();
      left = [T, K, P].filter((t) => topics.includes(t));
      return left.length === 0;
    }, 30000).catch((e) => { throw new Error(`${e.message}; still listed: ${left}`); });
    await rejects('metadata of a deleted topic', admin.fetchTopicMetadata({ topics: [T] }),
      (e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION');
  });

  await admin.disconnect();
});
