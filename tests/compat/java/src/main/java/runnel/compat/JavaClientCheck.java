package runnel.compat;

import static runnel.compat.Checks.TIMEOUT;
import static runnel.compat.Checks.check;
import static runnel.compat.Checks.describe;
import static runnel.compat.Checks.fail;
import static runnel.compat.Checks.failure;
import static runnel.compat.Checks.get;
import static runnel.compat.Checks.ok;
import static runnel.compat.Checks.waitFor;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSynonym;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
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
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The official Apache Kafka Java client (kafka-clients 4.x) against a broker:
 * <ul>
 * <li>Admin: create (with a config) / list / describe (by name and by topic id) / delete
 * topics; describeConfigs with synonyms (topic and broker); incrementalAlterConfigs SET,
 * APPEND, SUBTRACT, DELETE and a bad value; createPartitions; listOffsets earliest,
 * latest, max timestamp and by timestamp; deleteRecords.
 * <li>A producer with the client's DEFAULT settings (acks=all, idempotent), 10k records
 * with keys, headers and null values, then each compression codec; the stored batches
 * (read with raw Fetch requests) must carry a producer id per producer and contiguous
 * sequence numbers.
 * <li>A consumer with assign() + seekToBeginning (no group) that reads everything back and
 * compares it byte for byte, in order per partition.
 * <li>A classic consumer group: subscribe, commit, describe while active, a new consumer
 * resumes from the committed offsets; listGroups; alterConsumerGroupOffsets and a resume
 * from the altered offsets; deleteConsumerGroupOffsets; deleteConsumerGroups.
 * <li>A KIP-848 group (group.protocol=consumer): two consumers share the partitions,
 * commit; describe shows both and their assignments; a new consumer resumes from the
 * committed offsets.
 * </ul>
 * Usage: JavaClientCheck BOOTSTRAP.
 */
public final class JavaClientCheck {
    static final int PARTITIONS = 3;
    static final int N = 10_000;
    static final int N_CODEC = 2_000;
    /** Suffix of every topic and group name, so that a rerun against the same broker starts clean. */
    static final String RUN = Long.toString(System.currentTimeMillis() % 1_000_000_000L, 36);

    private JavaClientCheck() {}

    /** One record as produced, to compare with what the consumer reads. */
    record Sent(int partition, long offset, byte[] key, byte[] value, Header[] headers) {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: JavaClientCheck BOOTSTRAP");
            System.exit(2);
        }
        Checks.main("java-client", () -> run(args[0]));
    }

    static String name(String base) {
        return base + "-" + RUN;
    }

    static Admin admin(String bootstrap) {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.CLIENT_ID_CONFIG, "compat-java-admin");
        ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        return Admin.create(ap);
    }

    static void run(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            Checks.section("topics", () -> topicsCheck(admin, name("java-topics")));
            Checks.section("topic ids", () -> topicIdCheck(admin, name("java-ids")));
            Checks.section("configs", () -> configsCheck(admin, name("java-configs")));
            Checks.section("partitions", () -> partitionsCheck(admin, bootstrap, name("java-grow")));
            Checks.section("records", () -> recordsCheck(admin, bootstrap, name("java-events")));
            Checks.section("timestamps", () -> timestampsCheck(admin, bootstrap, name("java-times")));
            Checks.section("classic group", () -> classicGroupCheck(admin, bootstrap));
            Checks.section("consumer protocol", () -> consumerProtocolCheck(admin, bootstrap));
        }
    }

    /**
     * The default producer and plain consumers: produce, read back byte for byte, the
     * stored batches' producer ids, listOffsets, deleteRecords, every codec, deleteTopics.
     */
    static void recordsCheck(Admin admin, String bootstrap, String topic) throws Exception {
        createTopic(admin, topic, PARTITIONS);
        List<Sent> sent = produce(bootstrap, topic, N, null, 0);
        ok("produced " + N + " records (default settings: acks=all, idempotent) with keys, headers, "
                + "null values; offsets contiguous from 0 per partition");
        consumeAndCompare(bootstrap, topic, sent, "none");
        Set<Long> producerIds = new HashSet<>();
        producerIds.add(idempotentBatches(bootstrap, topic, sent, "default producer"));

        // --- ListOffsets ---
        long[] counts = counts(sent);
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
        check(earliest.get(tp0).offset() == cut,
                "listOffsets earliest " + tp0 + " = " + cut + " after deleteRecords", earliest.get(tp0));
        latest = listOffsets(admin, topic, OffsetSpec.latest());
        check(latest.get(tp0).offset() == counts[0], "listOffsets latest " + tp0 + " unchanged by deleteRecords",
                latest.get(tp0));
        List<Sent> remaining = new ArrayList<>();
        for (Sent s : sent) {
            if (s.partition() != 0 || s.offset() >= cut) {
                remaining.add(s);
            }
        }
        consumeAndCompare(bootstrap, topic, remaining, "after deleteRecords");

        // --- Compression codecs, each on its own topic, each with its own producer ---
        List<String> topics = new ArrayList<>(List.of(topic));
        String[] codecs = {"zstd", "lz4", "snappy", "gzip"};
        for (String codec : codecs) {
            String t = topic + "-" + codec;
            createTopic(admin, t, PARTITIONS);
            topics.add(t);
            List<Sent> s = produce(bootstrap, t, N_CODEC, codec, codec.hashCode());
            ok("produced " + N_CODEC + " records with compression.type=" + codec);
            consumeAndCompare(bootstrap, t, s, codec);
            producerIds.add(idempotentBatches(bootstrap, t, s, codec + " producer"));
        }
        check(producerIds.size() == 1 + codecs.length,
                "each of the " + (1 + codecs.length) + " producers got its own producer id", producerIds);

        // --- DeleteTopics ---
        get(admin.deleteTopics(topics).all(), "deleteTopics");
        boolean gone = waitFor(TIMEOUT, () -> {
            try {
                return admin.listTopics().names().get().stream().noneMatch(topics::contains);
            } catch (Exception e) {
                return false;
            }
        });
        check(gone, "deleteTopics " + topics + ": all gone from listTopics", topics);
        Throwable e = failure(admin.deleteTopics(List.of(topic)).all(), "deleting a missing topic");
        check(e instanceof UnknownTopicOrPartitionException,
                "deleting it again -> UnknownTopicOrPartitionException", describe(e));
    }

    static void createTopic(Admin admin, String topic, int partitions) throws Exception {
        create(admin, new NewTopic(topic, partitions, (short) 1));
    }

    /**
     * createTopics, then waits until describeTopics shows every partition with a leader:
     * Kafka answers CreateTopics before its metadata has the topic.
     */
    static void create(Admin admin, NewTopic... topics) throws Exception {
        List<String> names = Arrays.stream(topics).map(NewTopic::name).toList();
        get(admin.createTopics(List.of(topics)).all(), "createTopics(" + names + ")");
        boolean ready = waitFor(TIMEOUT, () -> {
            try {
                Map<String, TopicDescription> d = admin.describeTopics(names).allTopicNames().get();
                return Arrays.stream(topics).allMatch(t -> d.get(t.name()).partitions().size() == t.numPartitions()
                        && d.get(t.name()).partitions().stream().allMatch(p -> p.leader() != null));
            } catch (Exception e) {
                return false;
            }
        });
        if (!ready) {
            throw fail("created " + names + " but describeTopics does not show them with leaders");
        }
    }

    static void topicsCheck(Admin admin, String topic) throws Exception {
        create(admin, new NewTopic(topic, PARTITIONS, (short) 1).configs(Map.of("retention.ms", "3600000")));
        ok("createTopics(" + topic + ", " + PARTITIONS + " partitions, retention.ms=3600000)");
        Throwable e = failure(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all(),
                "creating an existing topic");
        check(e instanceof TopicExistsException, "creating it again -> TopicExistsException", describe(e));
        Set<String> names = get(admin.listTopics().names(), "listTopics");
        check(names.contains(topic), "listTopics shows it", names);

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
        e = failure(admin.describeTopics(List.of("java-no-such-topic")).allTopicNames(), "describing a missing topic");
        check(e instanceof UnknownTopicOrPartitionException,
                "describeTopics of a missing topic -> UnknownTopicOrPartitionException", describe(e));
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /** describeTopics by topic id (Metadata v10+ with topic ids): the name and partitions. */
    static void topicIdCheck(Admin admin, String topic) throws Exception {
        createTopic(admin, topic, PARTITIONS);
        TopicDescription desc = get(admin.describeTopics(List.of(topic)).allTopicNames(), "describeTopics")
                .get(topic);
        TopicDescription byId = get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(desc.topicId())))
                .allTopicIds(), "describeTopics by id").get(desc.topicId());
        check(byId != null && byId.name().equals(topic) && byId.partitions().size() == PARTITIONS,
                "describeTopics by topic id " + desc.topicId() + " -> " + topic + ", " + PARTITIONS + " partitions",
                byId);
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    static Config describeConfig(Admin admin, ConfigResource res) throws Exception {
        return get(admin.describeConfigs(List.of(res), new DescribeConfigsOptions().includeSynonyms(true)).all(),
                "describeConfigs " + res).get(res);
    }

    static void configsCheck(Admin admin, String topic) throws Exception {
        create(admin, new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "3600000")));
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = describeConfig(admin, res);
        ConfigEntry rm = cfg.get("retention.ms");
        check(rm != null && "3600000".equals(rm.value()), "describeConfigs: retention.ms=3600000", rm);
        check(rm.source() == ConfigSource.DYNAMIC_TOPIC_CONFIG && !rm.isDefault() && !rm.isReadOnly()
                        && rm.type() == ConfigEntry.ConfigType.LONG,
                "describeConfigs: retention.ms is a LONG topic override (DYNAMIC_TOPIC_CONFIG)", rm);
        // Synonyms, most specific first: a topic override comes first.
        List<ConfigSynonym> syn = rm.synonyms();
        check(!syn.isEmpty() && syn.get(0).name().equals("retention.ms") && "3600000".equals(syn.get(0).value())
                        && syn.get(0).source() == ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "describeConfigs synonyms: retention.ms first as the topic override", syn);
        // A topic config left at its default names the broker default behind it.
        String[][] defaults = {
            {"cleanup.policy", "delete", "log.cleanup.policy", "LIST"},
            {"max.message.bytes", "1048588", "message.max.bytes", "INT"},
            {"segment.bytes", "1073741824", "log.segment.bytes", "INT"},
        };
        for (String[] d : defaults) {
            ConfigEntry ce = cfg.get(d[0]);
            check(ce != null && d[1].equals(ce.value()) && ce.isDefault() && ce.source() == ConfigSource.DEFAULT_CONFIG
                            && ce.type() == ConfigEntry.ConfigType.valueOf(d[3]),
                    "describeConfigs: " + d[0] + "=" + d[1] + ", a " + d[3] + ", DEFAULT_CONFIG", ce);
            check(ce.synonyms().size() == 1 && ce.synonyms().get(0).name().equals(d[2])
                            && d[1].equals(ce.synonyms().get(0).value())
                            && ce.synonyms().get(0).source() == ConfigSource.DEFAULT_CONFIG,
                    "describeConfigs synonyms: " + d[0] + " <- " + d[2] + "=" + d[1] + " (DEFAULT_CONFIG)",
                    ce.synonyms());
        }

        // The broker's own configs.
        Collection<Node> nodes = get(admin.describeCluster().nodes(), "describeCluster");
        check(nodes.size() == 1, "describeCluster: one node", nodes);
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER,
                Integer.toString(nodes.iterator().next().id()));
        Config bcfg = describeConfig(admin, broker);
        for (String[] kv : new String[][] {{"node.id", broker.name()}, {"num.partitions", "1"},
                {"auto.create.topics.enable", "true"}}) {
            ConfigEntry be = bcfg.get(kv[0]);
            check(be != null && kv[1].equals(be.value()) && be.isReadOnly(),
                    "describeConfigs broker " + broker.name() + ": " + kv[0] + "=" + kv[1] + ", read-only", be);
        }

        // IncrementalAlterConfigs: SET, APPEND, SUBTRACT, DELETE.
        alter(admin, res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "2097152"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)));
        cfg = describeConfig(admin, res);
        check("7200000".equals(cfg.get("retention.ms").value())
                        && cfg.get("retention.ms").source() == ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "incrementalAlterConfigs SET retention.ms=7200000", cfg.get("retention.ms"));
        check("2097152".equals(cfg.get("max.message.bytes").value())
                        && cfg.get("max.message.bytes").source() == ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "incrementalAlterConfigs SET max.message.bytes=2097152", cfg.get("max.message.bytes"));
        check(Set.of("delete", "compact").equals(Set.of(cfg.get("cleanup.policy").value().split(","))),
                "incrementalAlterConfigs APPEND cleanup.policy compact -> delete,compact", cfg.get("cleanup.policy"));
        alter(admin, res, List.of(
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE)));
        cfg = describeConfig(admin, res);
        check("delete".equals(cfg.get("cleanup.policy").value()),
                "incrementalAlterConfigs SUBTRACT cleanup.policy compact -> delete", cfg.get("cleanup.policy"));
        ConfigEntry mmb = cfg.get("max.message.bytes");
        check(mmb.source() == ConfigSource.DEFAULT_CONFIG && "1048588".equals(mmb.value()),
                "incrementalAlterConfigs DELETE max.message.bytes -> back to the default 1048588", mmb);
        check("7200000".equals(cfg.get("retention.ms").value()),
                "retention.ms untouched by the second alter", cfg.get("retention.ms"));
        Throwable e = failure(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all(), "retention.ms=soon");
        check(e instanceof InvalidConfigurationException,
                "incrementalAlterConfigs retention.ms=soon -> InvalidConfigurationException", describe(e));
        check("7200000".equals(describeConfig(admin, res).get("retention.ms").value()),
                "the refused alter changed nothing", describeConfig(admin, res).get("retention.ms"));
        e = failure(admin.describeConfigs(List.of(new ConfigResource(ConfigResource.Type.TOPIC, "java-no-such")))
                .all(), "describeConfigs of a missing topic");
        check(e instanceof UnknownTopicOrPartitionException,
                "describeConfigs of a missing topic -> UnknownTopicOrPartitionException", describe(e));
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /** CreatePartitions: 1 -> 3; shrinking is refused; the new partitions take records. */
    static void partitionsCheck(Admin admin, String bootstrap, String topic) throws Exception {
        createTopic(admin, topic, 1);
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all(), "createPartitions");
        boolean grown = waitFor(TIMEOUT, () -> {
            try {
                return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size() == 3;
            } catch (Exception ex) {
                return false;
            }
        });
        check(grown, "createPartitions " + topic + " 1 -> 3: describeTopics shows 3 partitions", topic);
        Throwable e = failure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all(),
                "createPartitions 3 -> 2");
        check(e instanceof InvalidPartitionsException, "createPartitions 3 -> 2 -> InvalidPartitionsException",
                describe(e));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps(bootstrap, null))) {
            for (int p = 0; p < 3; p++) {
                RecordMetadata md = get(producer.send(new ProducerRecord<>(topic, p, null, new byte[] {(byte) p})),
                        "send to " + topic + "-" + p);
                check(md.partition() == p && md.offset() == 0, "produce to new partition " + topic + "-" + p
                        + " at offset 0", md);
            }
        }
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /**
     * ListOffsets by timestamp on records with set timestamps: the first offset whose
     * timestamp is at or after the target, the record with the largest timestamp, and -1
     * past the last one.
     */
    static void timestampsCheck(Admin admin, String bootstrap, String topic) throws Exception {
        createTopic(admin, topic, 1);
        long t0 = System.currentTimeMillis() - 3_600_000;
        // Offset i has timestamp t0 + ts[i] seconds; not monotonic: the max is at offset 6.
        long[] ts = {0, 10, 20, 30, 40, 50, 90, 60, 70, 80};
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps(bootstrap, null))) {
            for (int i = 0; i < ts.length; i++) {
                RecordMetadata md = get(producer.send(new ProducerRecord<>(topic, 0, t0 + ts[i] * 1000, null,
                        ("t" + i).getBytes(StandardCharsets.UTF_8))), "send #" + i + " to " + topic);
                if (md.offset() != i || md.timestamp() != t0 + ts[i] * 1000) {
                    throw fail(topic + " send #" + i + ": acknowledged at " + md.offset() + " with timestamp "
                            + md.timestamp());
                }
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        long[][] cases = {{35, 4, 40}, {0, 0, 0}, {-100, 0, 0}, {55, 6, 90}, {61, 6, 90}, {85, 6, 90}};
        for (long[] c : cases) {
            ListOffsetsResultInfo r = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(t0 + c[0] * 1000)))
                    .partitionResult(tp), "listOffsets forTimestamp");
            check(r.offset() == c[1] && r.timestamp() == t0 + c[2] * 1000, "listOffsets forTimestamp(t0+" + c[0]
                    + "s) -> offset " + c[1] + " with timestamp t0+" + c[2] + "s", r);
        }
        ListOffsetsResultInfo past = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(t0 + 91_000)))
                .partitionResult(tp), "listOffsets forTimestamp past the end");
        check(past.offset() == -1 && past.timestamp() == -1,
                "listOffsets forTimestamp past the largest timestamp -> offset -1, timestamp -1", past);
        ListOffsetsResultInfo max = get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp),
                "listOffsets maxTimestamp");
        check(max.offset() == 6 && max.timestamp() == t0 + 90_000,
                "listOffsets maxTimestamp -> offset 6 (not the last one) with timestamp t0+90s", max);
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /**
     * The stored batches of every partition `sent` went to carry one producer id (the
     * same for all; returned), a producer epoch, no transaction flag, and sequence numbers
     * that count the partition's records from 0: what an idempotent producer sends.
     */
    static long idempotentBatches(String bootstrap, String topic, List<Sent> sent, String label) throws Exception {
        long[] counts = counts(sent);
        Set<Long> ids = new HashSet<>();
        int batches = 0;
        for (int p = 0; p < PARTITIONS; p++) {
            TopicPartition tp = new TopicPartition(topic, p);
            long expectSeq = 0;
            for (RecordBatch b : StoredBatches.read(bootstrap, tp, counts[p])) {
                batches++;
                if (!b.hasProducerId() || b.producerEpoch() < 0 || b.isTransactional()) {
                    throw fail(label + ": stored batch " + tp + "@" + b.baseOffset() + " has producer id "
                            + b.producerId() + " epoch " + b.producerEpoch() + " transactional " + b.isTransactional());
                }
                if (b.baseSequence() != expectSeq || b.lastSequence() != expectSeq + b.lastOffset() - b.baseOffset()
                        || b.baseOffset() != expectSeq) {
                    throw fail(label + ": stored batch " + tp + "@" + b.baseOffset() + "-" + b.lastOffset()
                            + " has sequences " + b.baseSequence() + "-" + b.lastSequence() + ", expected from "
                            + expectSeq);
                }
                expectSeq = b.lastSequence() + 1;
                ids.add(b.producerId());
            }
            if (expectSeq != counts[p]) {
                throw fail(label + ": stored batches of " + tp + " end at sequence " + expectSeq + ", not "
                        + counts[p]);
            }
        }
        check(ids.size() == 1, label + ": all " + batches + " stored batches of " + topic + " carry one producer id "
                + ids + ", an epoch and sequence numbers 0.. per partition", ids);
        return ids.iterator().next();
    }

    static long[] counts(List<Sent> sent) {
        long[] counts = new long[PARTITIONS];
        for (Sent s : sent) {
            counts[s.partition()]++;
        }
        return counts;
    }

    /**
     * Classic protocol (JoinGroup/SyncGroup/Heartbeat/OffsetCommit/LeaveGroup): the only
     * member gets every partition, reads everything and commits; the Admin API shows the
     * active group and then the committed offsets; a second consumer resumes from them.
     * Then listGroups, alterConsumerGroupOffsets (a third consumer starts where they were
     * set), deleteConsumerGroupOffsets and deleteConsumerGroups.
     */
    static void classicGroupCheck(Admin admin, String bootstrap) throws Exception {
        String topic = name("java-group");
        String group = name("java-classic-group");
        createTopic(admin, topic, PARTITIONS);
        List<Sent> first = produce(bootstrap, topic, 600, null, 1);
        long[] counts = counts(first);
        Map<String, String> classic = Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap, group, classic)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = pollUntil(List.of(c), first.size());
            check(got.size() == first.size(), group + ": the subscribe() consumer read all " + first.size()
                    + " records", got.size());
            check(c.assignment().size() == PARTITIONS, group + ": its only member is assigned all " + PARTITIONS
                    + " partitions", c.assignment());
            c.commitSync(TIMEOUT);
            ConsumerGroupDescription gd = describeGroup(admin, group);
            check(gd.type() == GroupType.CLASSIC && gd.groupState() == GroupState.STABLE
                            && "range".equals(gd.partitionAssignor()) && !gd.isSimpleConsumerGroup(),
                    "describeConsumerGroups while active: CLASSIC, STABLE, assignor range", gd);
            check(gd.members().size() == 1
                            && gd.members().iterator().next().assignment().topicPartitions().equals(c.assignment()),
                    "describeConsumerGroups: one member, assigned what the consumer has", gd.members());
            check(gd.members().iterator().next().clientId().equals("compat-java-" + group),
                    "describeConsumerGroups: the member's client id", gd.members());
        }
        checkCommitted(admin, group, topic, counts, "after the first consumer");
        ConsumerGroupDescription gd = describeGroup(admin, group);
        check(gd.groupState() == GroupState.EMPTY && gd.members().isEmpty(),
                "describeConsumerGroups after close: EMPTY, no members (LeaveGroup)", gd);

        List<Sent> second = produce(bootstrap, topic, 150, null, 2, counts);
        long[] counts2 = counts.clone();
        for (Sent s : second) {
            counts2[s.partition()]++;
        }
        resume(bootstrap, group, topic, classic, counts, second.size(), "classic: a new consumer");
        checkCommitted(admin, group, topic, counts2, "after the resumed consumer");

        Collection<GroupListing> listed = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all(),
                "listGroups");
        GroupListing gl = listed.stream().filter(g -> g.groupId().equals(group)).findFirst().orElse(null);
        check(gl != null && gl.type().equals(Optional.of(GroupType.CLASSIC))
                        && gl.protocol().equals("consumer")
                        && gl.groupState().equals(Optional.of(GroupState.EMPTY)),
                "listGroups(consumer groups): " + group + " CLASSIC, protocol consumer, EMPTY", listed);

        // alterConsumerGroupOffsets: back to 10 records before the end on each partition.
        Map<TopicPartition, OffsetAndMetadata> altered = new HashMap<>();
        long[] back = new long[PARTITIONS];
        for (int p = 0; p < PARTITIONS; p++) {
            back[p] = counts2[p] - 10;
            altered.put(new TopicPartition(topic, p), new OffsetAndMetadata(back[p], "rewound"));
        }
        get(admin.alterConsumerGroupOffsets(group, altered).all(), "alterConsumerGroupOffsets");
        Map<TopicPartition, OffsetAndMetadata> now = checkCommitted(admin, group, topic, back, "after alter");
        check(now.values().stream().allMatch(om -> "rewound".equals(om.metadata())),
                "alterConsumerGroupOffsets: the commit metadata is kept", now);
        resume(bootstrap, group, topic, classic, back, 10 * PARTITIONS, "classic: after alterConsumerGroupOffsets");

        // deleteConsumerGroupOffsets (OffsetDelete) for one partition of the empty group.
        TopicPartition tp0 = new TopicPartition(topic, 0);
        get(admin.deleteConsumerGroupOffsets(group, Set.of(tp0)).all(), "deleteConsumerGroupOffsets");
        now = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets");
        check(!now.containsKey(tp0) && now.size() == PARTITIONS - 1,
                "deleteConsumerGroupOffsets " + tp0 + ": its offset is gone, the others stay", now);

        get(admin.deleteConsumerGroups(List.of(group)).all(), "deleteConsumerGroups");
        ok("deleteConsumerGroups " + group);
        checkGone(admin, group);
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /**
     * KIP-848 (ConsumerGroupHeartbeat): two consumers with group.protocol=consumer share the
     * partitions (server-side assignor), each reads only its own, both commit; the Admin API
     * shows a CONSUMER group with both members and their assignments; after they leave, a
     * new consumer resumes from the committed offsets.
     */
    static void consumerProtocolCheck(Admin admin, String bootstrap) throws Exception {
        String topic = name("java-848");
        String group = name("java-848-group");
        createTopic(admin, topic, PARTITIONS);
        Map<String, String> kip848 = Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        long[] counts;
        try (KafkaConsumer<byte[], byte[]> a = consumer(bootstrap, group, kip848);
                KafkaConsumer<byte[], byte[]> b = consumer(bootstrap, group, kip848)) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            // Nothing to read yet: poll both until the assignment settles on a split.
            boolean split = false;
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (!split && System.nanoTime() < deadline) {
                a.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
                Set<TopicPartition> all = new HashSet<>(a.assignment());
                all.addAll(b.assignment());
                split = !a.assignment().isEmpty() && !b.assignment().isEmpty()
                        && a.assignment().size() + b.assignment().size() == PARTITIONS && all.size() == PARTITIONS;
            }
            check(split, group + ": the two consumers split the " + PARTITIONS + " partitions between them",
                    a.assignment() + " / " + b.assignment());
            ConsumerGroupDescription gd = describeGroup(admin, group);
            check(gd.type() == GroupType.CONSUMER && gd.groupState() == GroupState.STABLE
                            && "uniform".equals(gd.partitionAssignor()),
                    "describeConsumerGroups: CONSUMER, STABLE, assignor uniform", gd);
            Map<Set<TopicPartition>, Integer> byAssignment = new HashMap<>();
            for (MemberDescription m : gd.members()) {
                byAssignment.merge(m.assignment().topicPartitions(), 1, Integer::sum);
                check(m.memberEpoch().isPresent() && m.memberEpoch().get() > 0
                                && m.targetAssignment().isPresent()
                                && m.targetAssignment().get().topicPartitions().equals(m.assignment().topicPartitions()),
                        "describeConsumerGroups: member " + m.consumerId() + " has an epoch, its target assignment "
                                + "is reached", m);
            }
            check(gd.members().size() == 2 && byAssignment.get(a.assignment()) != null
                            && byAssignment.get(b.assignment()) != null,
                    "describeConsumerGroups: two members, assigned what each consumer has", gd.members());
            check(gd.groupEpoch().isPresent() && gd.targetAssignmentEpoch().equals(gd.groupEpoch()),
                    "describeConsumerGroups: group epoch = target assignment epoch", gd);

            List<Sent> sent = produce(bootstrap, topic, 900, null, 3);
            counts = counts(sent);
            List<ConsumerRecord<byte[], byte[]>> gotA = new ArrayList<>();
            List<ConsumerRecord<byte[], byte[]>> gotB = new ArrayList<>();
            deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (gotA.size() + gotB.size() < sent.size() && System.nanoTime() < deadline) {
                a.poll(Duration.ofMillis(100)).forEach(gotA::add);
                b.poll(Duration.ofMillis(100)).forEach(gotB::add);
            }
            a.poll(Duration.ofMillis(300)).forEach(gotA::add);
            b.poll(Duration.ofMillis(300)).forEach(gotB::add);
            check(gotA.size() + gotB.size() == sent.size(), group + ": the two read " + sent.size()
                    + " records between them", gotA.size() + " + " + gotB.size());
            checkOwn(gotA, a.assignment(), counts, group + " consumer A");
            checkOwn(gotB, b.assignment(), counts, group + " consumer B");
            a.commitSync(TIMEOUT);
            b.commitSync(TIMEOUT);
        }
        checkCommitted(admin, group, topic, counts, "after the two consumers");
        boolean empty = waitFor(TIMEOUT, () -> {
            try {
                return admin.describeConsumerGroups(List.of(group)).all().get().get(group).groupState()
                        == GroupState.EMPTY;
            } catch (Exception ex) {
                return false;
            }
        });
        check(empty, "describeConsumerGroups after both closed: EMPTY", describeGroup(admin, group));

        List<Sent> more = produce(bootstrap, topic, 120, null, 4, counts);
        long[] counts2 = counts.clone();
        for (Sent s : more) {
            counts2[s.partition()]++;
        }
        resume(bootstrap, group, topic, kip848, counts, more.size(), "consumer protocol: a new consumer");
        checkCommitted(admin, group, topic, counts2, "after the resumed consumer");

        Collection<GroupListing> listed = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all(),
                "listGroups");
        check(listed.stream().anyMatch(g -> g.groupId().equals(group)
                        && g.type().equals(Optional.of(GroupType.CONSUMER))),
                "listGroups(consumer groups): " + group + " is a CONSUMER group", listed);
        get(admin.deleteConsumerGroups(List.of(group)).all(), "deleteConsumerGroups");
        ok("deleteConsumerGroups " + group);
        checkGone(admin, group);
        get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    }

    /**
     * A deleted group: describing it fails with GroupIdNotFoundException (DescribeGroups
     * v6+, KIP-1043) or shows it DEAD with no members (older versions); listGroups leaves
     * it out and it has no committed offsets.
     */
    static void checkGone(Admin admin, String group) throws Exception {
        try {
            ConsumerGroupDescription gd = admin.describeConsumerGroups(List.of(group)).all()
                    .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS).get(group);
            check(gd.groupState() == GroupState.DEAD && gd.members().isEmpty(),
                    "describing the deleted group " + group + ": DEAD, no members", gd);
        } catch (ExecutionException e) {
            check(e.getCause() instanceof GroupIdNotFoundException,
                    "describing the deleted group " + group + " -> GroupIdNotFoundException", describe(e));
        }
        Collection<GroupListing> listed = get(admin.listGroups().all(), "listGroups");
        check(listed.stream().noneMatch(g -> g.groupId().equals(group)), "listGroups leaves out the deleted " + group,
                listed);
        Map<TopicPartition, OffsetAndMetadata> left =
                get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets");
        check(left.isEmpty(), "the deleted group " + group + " has no committed offsets", left);
    }

    /** Every record in `got` is from a partition in `assigned`, each partition read fully once. */
    static void checkOwn(List<ConsumerRecord<byte[], byte[]>> got, Set<TopicPartition> assigned, long[] counts,
            String who) {
        Map<Integer, List<Long>> offsets = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            if (!assigned.contains(new TopicPartition(r.topic(), r.partition()))) {
                throw fail(who + " read " + r.topic() + "-" + r.partition() + "@" + r.offset()
                        + ", not in its assignment " + assigned);
            }
            offsets.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.offset());
        }
        for (TopicPartition tp : assigned) {
            List<Long> o = offsets.getOrDefault(tp.partition(), List.of());
            boolean exact = o.size() == counts[tp.partition()];
            for (int i = 0; exact && i < o.size(); i++) {
                exact = o.get(i) == i;
            }
            check(exact, who + " read " + tp + " offsets 0.." + (counts[tp.partition()] - 1) + " once, in order",
                    o.size() + " records");
        }
    }

    static ConsumerGroupDescription describeGroup(Admin admin, String group) throws Exception {
        return get(admin.describeConsumerGroups(List.of(group)).all(), "describeConsumerGroups").get(group);
    }

    static Map<TopicPartition, OffsetAndMetadata> checkCommitted(Admin admin, String group, String topic,
            long[] want, String when) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> committed =
                get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets");
        boolean good = committed.size() == PARTITIONS;
        for (int p = 0; good && p < PARTITIONS; p++) {
            OffsetAndMetadata om = committed.get(new TopicPartition(topic, p));
            good = om != null && om.offset() == want[p];
        }
        check(good, "listConsumerGroupOffsets " + group + " " + when + " = " + Arrays.toString(want), committed);
        return committed;
    }

    /**
     * A new consumer in `group` must start at `from[partition]` (the committed offsets),
     * read exactly `n` records, and commit.
     */
    static void resume(String bootstrap, String group, String topic, Map<String, String> extra, long[] from, int n,
            String label) throws Exception {
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap, group, extra)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> got = pollUntil(List.of(c), n);
            long[] next = from.clone();
            for (ConsumerRecord<byte[], byte[]> r : got) {
                if (r.offset() != next[r.partition()]) {
                    throw fail(label + ": read " + r.topic() + "-" + r.partition() + "@" + r.offset() + ", expected "
                            + next[r.partition()] + " (resuming from the committed " + Arrays.toString(from) + ")");
                }
                next[r.partition()]++;
            }
            check(got.size() == n, label + " resumed from the committed offsets " + Arrays.toString(from)
                    + " and read only the " + n + " records after them", got.size());
            c.commitSync(TIMEOUT);
        }
    }

    /** Polls the consumers until `n` records came (or the timeout), then once more for extras. */
    static List<ConsumerRecord<byte[], byte[]>> pollUntil(List<KafkaConsumer<byte[], byte[]>> consumers, int n) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (got.size() < n && System.nanoTime() < deadline) {
            for (KafkaConsumer<byte[], byte[]> c : consumers) {
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            }
        }
        for (KafkaConsumer<byte[], byte[]> c : consumers) {
            c.poll(Duration.ofMillis(300)).forEach(got::add);
        }
        return got;
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String group, Map<String, String> extra) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "compat-java-" + group);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.putAll(extra);
        return new KafkaConsumer<>(cp);
    }

    /**
     * incrementalAlterConfigs, then waits until describeConfigs shows a change (Kafka
     * applies an alter after answering it; all ops of one request at once).
     */
    static void alter(Admin admin, ConfigResource res, Collection<AlterConfigOp> ops) throws Exception {
        Config before = describeConfig(admin, res);
        get(admin.incrementalAlterConfigs(Map.of(res, ops)).all(), "incrementalAlterConfigs " + ops);
        boolean changed = waitFor(TIMEOUT, () -> {
            try {
                return !describeConfig(admin, res).equals(before);
            } catch (Exception e) {
                return false;
            }
        });
        if (!changed) {
            throw fail("incrementalAlterConfigs " + ops + " succeeded but describeConfigs shows no change");
        }
    }

    static Map<TopicPartition, ListOffsetsResultInfo> listOffsets(Admin admin, String topic, OffsetSpec spec)
            throws Exception {
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            req.put(new TopicPartition(topic, p), spec);
        }
        return get(admin.listOffsets(req).all(), "listOffsets");
    }

    /** Only the bootstrap address, the serializers and, if given, a codec: defaults otherwise. */
    static Properties producerProps(String bootstrap, String codec) {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (codec != null) {
            pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        }
        return pp;
    }

    /**
     * Sends n records (the default partitioner picks the partition from the key) and returns
     * them with the partition and offset the broker acknowledged. Every 997th record has a
     * null value; every 5th has a header with a null value; values are partly compressible.
     */
    static List<Sent> produce(String bootstrap, String topic, int n, String codec, long seed) throws Exception {
        return produce(bootstrap, topic, n, codec, seed, new long[PARTITIONS]);
    }

    /** As above, to partitions that already hold records: `start` has each one's next offset. */
    static List<Sent> produce(String bootstrap, String topic, int n, String codec, long seed, long[] start)
            throws Exception {
        Random rnd = new Random(seed);
        List<byte[]> keys = new ArrayList<>();
        List<byte[]> values = new ArrayList<>();
        List<Header[]> headers = new ArrayList<>();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps(bootstrap, codec))) {
            for (int i = 0; i < n; i++) {
                byte[] key = ("k" + seed + "-" + i).getBytes(StandardCharsets.UTF_8);
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
                throw fail("send #" + i + " to " + topic + " acknowledged at " + p + "@" + md.offset()
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
                    throw fail(where + ": offset " + r.offset());
                }
                if (!Arrays.equals(r.key(), s.key())) {
                    throw fail(where + ": key differs: " + show(r.key()) + " vs " + show(s.key()));
                }
                if (!Arrays.equals(r.value(), s.value())) {
                    throw fail(where + ": value differs: " + show(r.value()) + " vs " + show(s.value()));
                }
                Header[] rh = r.headers().toArray();
                boolean same = rh.length == s.headers().length;
                for (int h = 0; same && h < rh.length; h++) {
                    same = rh[h].key().equals(s.headers()[h].key())
                            && Arrays.equals(rh[h].value(), s.headers()[h].value());
                }
                if (!same) {
                    throw fail(where + ": headers differ: " + Arrays.toString(rh) + " vs "
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
