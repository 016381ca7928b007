package runnel.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

/**
 * The official Apache Kafka Java client (kafka-clients) against runnel: Admin create /
 * describe / configs (describe, incremental alter) / list offsets / delete records /
 * delete topics; a producer with the client's DEFAULT settings (acks=all, idempotence on,
 * so InitProducerId and sequenced produce) sending 10k records with keys, headers and
 * some null values; the same with each compression codec; a consumer with assign() +
 * seekToBeginning (no group) that reads everything back and compares it byte for byte,
 * in order per partition; finally a consumer group (subscribe, commitSync, resume from the
 * committed offsets, describe / delete the group).
 *
 * Usage: JavaClientCheck BOOTSTRAP. Prints "  ok: ..." per check; the first failure
 * prints "FAIL: ..." and exits 1.
 */
public final class JavaClientCheck {
    static final int PARTITIONS = 3;
    static final int N = 10_000;
    static final int N_CODEC = 2_000;
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    static int checks = 0;

    static final class CheckFailed extends RuntimeException {
        CheckFailed(String msg) {
            super(msg);
        }
    }

    static void ok(String what) {
        checks++;
        System.out.println("  ok: " + what);
        System.out.flush();
    }

    static void check(boolean cond, String what, Object detail) {
        if (!cond) {
            throw new CheckFailed(what + " (got " + detail + ")");
        }
        ok(what);
    }

    /** One record as produced, to compare with what the consumer reads. */
    record Sent(int partition, long offset, byte[] key, byte[] value, Header[] headers) {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: JavaClientCheck BOOTSTRAP");
            System.exit(2);
        }
        System.out.println("== kafka-clients " + AppInfoParser.getVersion() + " (Java "
                + System.getProperty("java.version") + ")");
        int rc = 0;
        try {
            run(args[0]);
            System.out.println("java-client: " + checks + " checks passed");
        } catch (CheckFailed e) {
            System.err.println("FAIL: java-client: " + e.getMessage());
            rc = 1;
        } catch (Throwable e) {
            System.err.println("FAIL: java-client: " + describe(e));
            e.printStackTrace();
            rc = 1;
        }
        System.out.flush();
        System.err.flush();
        // Client threads must not keep a failed run alive.
        System.exit(rc);
    }

    static String describe(Throwable e) {
        Throwable t = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        return t.getClass().getName() + ": " + t.getMessage();
    }

    static <T> T get(Future<T> f, String what) throws Exception {
        try {
            return f.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new CheckFailed(what + " failed: " + describe(e));
        }
    }

    static void run(String bootstrap) throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.CLIENT_ID_CONFIG, "compat-java-admin");
        ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        try (Admin admin = Admin.create(ap)) {
            String topic = "java-events";
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);

            // --- CreateTopics, with a topic config ---
            get(admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1)
                    .configs(Map.of("retention.ms", "3600000")))).all(), "createTopics(" + topic + ")");
            ok("createTopics(" + topic + ", " + PARTITIONS + " partitions, retention.ms=3600000)");
            try {
                admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all()
                        .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
                throw new CheckFailed("creating an existing topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException,
                        "creating it again -> TopicExistsException", describe(e));
            }
            Set<String> names = get(admin.listTopics().names(), "listTopics");
            check(names.contains(topic), "listTopics shows it", names);

            // --- DescribeTopics ---
            TopicDescription desc = get(admin.describeTopics(List.of(topic)).allTopicNames(), "describeTopics")
                    .get(topic);
            check(desc != null && desc.name().equals(topic) && !desc.isInternal(),
                    "describeTopics: name, not internal", desc);
            check(desc.topicId() != null && !desc.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"),
                    "describeTopics: a topic id", desc.topicId());
            check(desc.partitions().size() == PARTITIONS, "describeTopics: " + PARTITIONS + " partitions",
                    desc.partitions());
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartitionInfo pi = desc.partitions().get(p);
                boolean good = pi.partition() == p && pi.leader() != null && !pi.leader().isEmpty()
                        && pi.replicas().size() == 1 && pi.isr().size() == 1
                        && pi.replicas().get(0).id() == pi.leader().id();
                check(good, "describeTopics: partition " + p + " led by the one broker, 1 replica, 1 in ISR", pi);
            }

            // --- DescribeConfigs ---
            Config cfg = get(admin.describeConfigs(List.of(res)).all(), "describeConfigs").get(res);
            ConfigEntry rm = cfg.get("retention.ms");
            check(rm != null && "3600000".equals(rm.value()), "describeConfigs: retention.ms=3600000", rm);
            check(rm.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "describeConfigs: retention.ms source DYNAMIC_TOPIC_CONFIG", rm.source());
            ConfigEntry cp = cfg.get("cleanup.policy");
            check(cp != null && "delete".equals(cp.value()), "describeConfigs: cleanup.policy=delete", cp);
            check(cp.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG
                            || cp.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                    "describeConfigs: cleanup.policy is a default (not a topic override)", cp.source());

            // --- IncrementalAlterConfigs: SET, APPEND, SUBTRACT, DELETE ---
            alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "2097152"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)));
            cfg = get(admin.describeConfigs(List.of(res)).all(), "describeConfigs").get(res);
            check("7200000".equals(cfg.get("retention.ms").value())
                            && cfg.get("retention.ms").source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "incrementalAlterConfigs SET retention.ms=7200000", cfg.get("retention.ms"));
            check("2097152".equals(cfg.get("max.message.bytes").value())
                            && cfg.get("max.message.bytes").source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "incrementalAlterConfigs SET max.message.bytes=2097152", cfg.get("max.message.bytes"));
            check(Set.of("delete", "compact").equals(Set.of(cfg.get("cleanup.policy").value().split(","))),
                    "incrementalAlterConfigs APPEND cleanup.policy compact -> delete,compact",
                    cfg.get("cleanup.policy"));
            alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE)));
            cfg = get(admin.describeConfigs(List.of(res)).all(), "describeConfigs").get(res);
            check("delete".equals(cfg.get("cleanup.policy").value()),
                    "incrementalAlterConfigs SUBTRACT cleanup.policy compact -> delete", cfg.get("cleanup.policy"));
            check(cfg.get("max.message.bytes").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "incrementalAlterConfigs DELETE max.message.bytes -> back to the default",
                    cfg.get("max.message.bytes"));
            check("7200000".equals(cfg.get("retention.ms").value()),
                    "retention.ms untouched by the second alter", cfg.get("retention.ms"));

            // --- Produce with the DEFAULT producer settings, consume it back ---
            List<Sent> sent = produce(bootstrap, topic, N, null, 0);
            ok("produced " + N + " records (default settings: acks=all, idempotent) with keys, headers, "
                    + "null values; offsets contiguous from 0 per partition");
            consumeAndCompare(bootstrap, topic, sent, "none");

            // --- ListOffsets ---
            long[] counts = new long[PARTITIONS];
            for (Sent s : sent) {
                counts[s.partition()]++;
            }
            Map<TopicPartition, ListOffsetsResultInfo> earliest = listOffsets(admin, topic, OffsetSpec.earliest());
            Map<TopicPartition, ListOffsetsResultInfo> latest = listOffsets(admin, topic, OffsetSpec.latest());
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                check(earliest.get(tp).offset() == 0, "listOffsets earliest " + tp + " = 0", earliest.get(tp));
                check(latest.get(tp).offset() == counts[p], "listOffsets latest " + tp + " = " + counts[p],
                        latest.get(tp));
            }

            // --- DeleteRecords ---
            TopicPartition tp0 = new TopicPartition(topic, 0);
            long cut = counts[0] / 2;
            DeletedRecords dr = get(admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(cut)))
                    .lowWatermarks().get(tp0), "deleteRecords");
            check(dr.lowWatermark() == cut, "deleteRecords(" + tp0 + " before " + cut + "): low watermark " + cut,
                    dr.lowWatermark());
            earliest = listOffsets(admin, topic, OffsetSpec.earliest());
            check(earliest.get(tp0).offset() == cut, "listOffsets earliest " + tp0 + " = " + cut + " after deleteRecords",
                    earliest.get(tp0));
            List<Sent> remaining = new ArrayList<>();
            for (Sent s : sent) {
                if (s.partition() != 0 || s.offset() >= cut) {
                    remaining.add(s);
                }
            }
            consumeAndCompare(bootstrap, topic, remaining, "after deleteRecords");

            // --- Compression codecs, each on its own topic ---
            List<String> topics = new ArrayList<>(List.of(topic));
            String[] codecs = {"zstd", "lz4", "snappy", "gzip"};
            for (String codec : codecs) {
                String t = "java-" + codec;
                get(admin.createTopics(List.of(new NewTopic(t, PARTITIONS, (short) 1))).all(), "createTopics(" + t + ")");
                topics.add(t);
                List<Sent> s = produce(bootstrap, t, N_CODEC, codec, codec.hashCode());
                ok("produced " + N_CODEC + " records with compression.type=" + codec);
                consumeAndCompare(bootstrap, t, s, codec);
            }

            // --- DeleteTopics ---
            get(admin.deleteTopics(topics).all(), "deleteTopics");
            boolean gone = false;
            for (int i = 0; i < 100 && !gone; i++) {
                Set<String> now = get(admin.listTopics().names(), "listTopics");
                gone = now.stream().noneMatch(topics::contains);
                if (!gone) {
                    Thread.sleep(100);
                }
            }
            check(gone, "deleteTopics " + topics + ": all gone from listTopics", topics);
            try {
                admin.deleteTopics(List.of(topic)).all().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
                throw new CheckFailed("deleting a missing topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof UnknownTopicOrPartitionException,
                        "deleting it again -> UnknownTopicOrPartitionException", describe(e));
            }

            // --- A consumer group (classic protocol): subscribe, commit, resume ---
            groupCheck(admin, bootstrap);
        }
    }

    /**
     * group.id + subscribe(): the consumer joins the group (FindCoordinator, JoinGroup,
     * SyncGroup, Heartbeat), gets all partitions, reads everything, commitSync (OffsetCommit)
     * and leaves on close (LeaveGroup). The committed offsets show in the Admin API
     * (OffsetFetch); a second consumer in the same group resumes from them and sees only
     * the records produced since. Then describeConsumerGroups / deleteConsumerGroups.
     */
    static void groupCheck(Admin admin, String bootstrap) throws Exception {
        String topic = "java-group";
        String group = "java-compat-group";
        get(admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all(), "createTopics(" + topic + ")");
        List<Sent> first = produce(bootstrap, topic, 600, null, 1);
        long[] counts = new long[PARTITIONS];
        for (Sent s : first) {
            counts[s.partition()]++;
        }
        int got = groupConsume(bootstrap, topic, group, first.size(), null);
        check(got == first.size(), "group " + group + ": subscribe() consumer read all " + first.size()
                + " records and committed", got);

        Map<TopicPartition, OffsetAndMetadata> committed =
                get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets");
        for (int p = 0; p < PARTITIONS; p++) {
            TopicPartition tp = new TopicPartition(topic, p);
            OffsetAndMetadata om = committed.get(tp);
            check(om != null && om.offset() == counts[p], "listConsumerGroupOffsets " + tp + " = " + counts[p], om);
        }

        List<Sent> second = produce(bootstrap, topic, 150, null, 2, counts);
        long[] minOffset = counts.clone();
        got = groupConsume(bootstrap, topic, group, second.size(), minOffset);
        check(got == second.size(), "group " + group + ": a second consumer resumed from the committed offsets "
                + "and read only the " + second.size() + " new records", got);

        ConsumerGroupDescription gd = get(admin.describeConsumerGroups(List.of(group)).all(), "describeConsumerGroups")
                .get(group);
        check(gd != null && gd.groupId().equals(group) && gd.members().isEmpty(),
                "describeConsumerGroups " + group + ": no members after the consumers closed", gd);

        get(admin.deleteConsumerGroups(List.of(group)).all(), "deleteConsumerGroups");
        ok("deleteConsumerGroups " + group);
        try {
            admin.describeConsumerGroups(List.of(group)).all().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            Map<TopicPartition, OffsetAndMetadata> left =
                    get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets");
            check(left.isEmpty(), "deleted group " + group + " has no committed offsets", left);
        } catch (ExecutionException e) {
            check(e.getCause() instanceof GroupIdNotFoundException,
                    "describing the deleted group -> GroupIdNotFoundException", describe(e));
        }
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /**
     * A consumer in `group` subscribed to `topic` reads until it has `n` records (or the
     * timeout), checks that every record is at or after `minOffset[partition]` if given,
     * commits synchronously and closes. Returns the number read (plus whatever extra a last
     * short poll finds).
     */
    static int groupConsume(String bootstrap, String topic, String group, int n, long[] minOffset) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        int total = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (total < n && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    if (minOffset != null && r.offset() < minOffset[r.partition()]) {
                        throw new CheckFailed("group " + group + ": read " + r.topic() + "-" + r.partition() + "@"
                                + r.offset() + ", before the committed offset " + minOffset[r.partition()]);
                    }
                    total++;
                }
            }
            check(consumer.assignment().size() == PARTITIONS,
                    "group " + group + ": the only member is assigned all " + PARTITIONS + " partitions",
                    consumer.assignment());
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                total++;
            }
            consumer.commitSync(TIMEOUT);
        }
        return total;
    }

    static void alter(Admin admin, ConfigResource res, Collection<AlterConfigOp> ops) throws Exception {
        get(admin.incrementalAlterConfigs(Map.of(res, ops)).all(), "incrementalAlterConfigs " + ops);
    }

    static Map<TopicPartition, ListOffsetsResultInfo> listOffsets(Admin admin, String topic, OffsetSpec spec)
            throws Exception {
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            req.put(new TopicPartition(topic, p), spec);
        }
        return get(admin.listOffsets(req).all(), "listOffsets");
    }

    /**
     * Sends n records (the default partitioner picks the partition from the key) and returns
     * them with the partition and offset the broker acknowledged. Every 997th record has a
     * null value; every 5th has a header with a null value; values are partly compressible.
     * The producer gets only the bootstrap address, the serializers and, if given, a codec.
     */
    static List<Sent> produce(String bootstrap, String topic, int n, String codec, long seed) throws Exception {
        return produce(bootstrap, topic, n, codec, seed, new long[PARTITIONS]);
    }

    /** As above, to partitions that already hold records: `start` has each one's next offset. */
    static List<Sent> produce(String bootstrap, String topic, int n, String codec, long seed, long[] start)
            throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (codec != null) {
            pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        }
        Random rnd = new Random(seed);
        List<byte[]> keys = new ArrayList<>();
        List<byte[]> values = new ArrayList<>();
        List<Header[]> headers = new ArrayList<>();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < n; i++) {
                byte[] key = ("k" + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = null;
                if (i % 997 != 996) {
                    byte[] text = ("value-" + i + "-").repeat(1 + i % 13).getBytes(StandardCharsets.UTF_8);
                    byte[] noise = new byte[rnd.nextInt(200)];
                    rnd.nextBytes(noise);
                    value = Arrays.copyOf(text, text.length + noise.length);
                    System.arraycopy(noise, 0, value, text.length, noise.length);
                }
                List<Header> hs = new ArrayList<>();
                hs.add(new RecordHeader("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                hs.add(new RecordHeader("bin", new byte[] {(byte) i, 0, (byte) 0xff}));
                if (i % 5 == 0) {
                    hs.add(new RecordHeader("nullvalue", (byte[]) null));
                }
                Header[] ha = hs.toArray(new Header[0]);
                keys.add(key);
                values.add(value);
                headers.add(ha);
                futures.add(producer.send(new ProducerRecord<>(topic, (Integer) null, key, value, Arrays.asList(ha))));
            }
            producer.flush();
        }
        List<Sent> sent = new ArrayList<>(n);
        long[] next = start.clone();
        for (int i = 0; i < n; i++) {
            RecordMetadata md = get(futures.get(i), "send #" + i + " to " + topic
                    + (codec == null ? "" : " (" + codec + ")"));
            int p = md.partition();
            if (p < 0 || p >= PARTITIONS || md.offset() != next[p]) {
                throw new CheckFailed("send #" + i + " to " + topic + " acknowledged at " + p + "@" + md.offset()
                        + ", expected offset " + (p >= 0 && p < PARTITIONS ? next[p] : -1)
                        + " (offsets must be contiguous, in send order, per partition)");
            }
            next[p]++;
            sent.add(new Sent(p, md.offset(), keys.get(i), values.get(i), headers.get(i)));
        }
        return sent;
    }

    /** assign() + seekToBeginning, no group; reads `want.size()` records and compares each. */
    static void consumeAndCompare(String bootstrap, String topic, List<Sent> want, String label) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<List<Sent>> wantBy = new ArrayList<>();
        List<List<ConsumerRecord<byte[], byte[]>>> gotBy = new ArrayList<>();
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            wantBy.add(new ArrayList<>());
            gotBy.add(new ArrayList<>());
            tps.add(new TopicPartition(topic, p));
        }
        for (Sent s : want) {
            wantBy.get(s.partition()).add(s);
        }
        int total = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (total < want.size() && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    gotBy.get(r.partition()).add(r);
                    total++;
                }
            }
            // Nothing more than what was produced.
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                gotBy.get(r.partition()).add(r);
                total++;
            }
        }
        check(total == want.size(), topic + " [" + label + "]: consumed " + want.size() + " records", total);
        for (int p = 0; p < PARTITIONS; p++) {
            List<Sent> w = wantBy.get(p);
            List<ConsumerRecord<byte[], byte[]>> g = gotBy.get(p);
            for (int k = 0; k < w.size(); k++) {
                Sent s = w.get(k);
                ConsumerRecord<byte[], byte[]> r = g.get(k);
                String where = topic + "-" + p + " record " + k + " (want offset " + s.offset() + ")";
                if (r.offset() != s.offset()) {
                    throw new CheckFailed(where + ": offset " + r.offset());
                }
                if (!Arrays.equals(r.key(), s.key())) {
                    throw new CheckFailed(where + ": key differs: " + show(r.key()) + " vs " + show(s.key()));
                }
                if (!Arrays.equals(r.value(), s.value())) {
                    throw new CheckFailed(where + ": value differs: " + show(r.value()) + " vs " + show(s.value()));
                }
                Header[] rh = r.headers().toArray();
                boolean same = rh.length == s.headers().length;
                for (int h = 0; same && h < rh.length; h++) {
                    same = rh[h].key().equals(s.headers()[h].key())
                            && Arrays.equals(rh[h].value(), s.headers()[h].value());
                }
                if (!same) {
                    throw new CheckFailed(where + ": headers differ: " + Arrays.toString(rh) + " vs "
                            + Arrays.toString(s.headers()));
                }
            }
            long nulls = w.stream().filter(s -> s.value() == null).count();
            ok(topic + "-" + p + " [" + label + "]: " + w.size() + " records in order, keys/values/headers "
                    + "byte-identical (" + nulls + " null values)");
        }
    }

    static String show(byte[] b) {
        if (b == null) {
            return "null";
        }
        return b.length + " bytes " + new String(b, 0, Math.min(b.length, 40), StandardCharsets.ISO_8859_1);
    }
}
