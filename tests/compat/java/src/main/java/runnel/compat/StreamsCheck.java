package runnel.compat;

import static runnel.compat.Checks.TIMEOUT;
import static runnel.compat.Checks.check;
import static runnel.compat.Checks.fail;
import static runnel.compat.Checks.get;
import static runnel.compat.Checks.ok;
import static runnel.compat.Checks.waitFor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams 4.x against a broker: a word count (flatMapValues, groupBy -> a
 * repartition topic, count() into a persistent store -> a changelog topic) with
 * processing.guarantee=at_least_once and the classic group protocol, as Streams uses by
 * default (its StreamsPartitionAssignor inside JoinGroup/SyncGroup).
 * <ol>
 * <li>Run 1: input in, exact counts out (every word's updates 1, 2, ... n in order);
 * Streams created its internal topics with the right partitions and configs through
 * CreateTopics; its group committed the input and repartition offsets; it purged the
 * repartition topic with DeleteRecords.
 * <li>Close (leaving the group), produce more, run 2 with the same state directory: the
 * counts go on from the committed offsets and the local store.
 * <li>Close, wipe the local state, produce more, run 3: the store is rebuilt from the
 * changelog and the counts still go on exactly; the changelog holds the final counts.
 * <li>With --eos=refused, the same app with exactly_once_v2 must fail with
 * TransactionalIdAuthorizationException (a broker without transactions); with
 * --eos=works it must count exactly (a broker with them). Default: not run.
 * </ol>
 * Usage: StreamsCheck BOOTSTRAP [--eos=refused|works].
 */
public final class StreamsCheck {
    static final int PARTITIONS = 3;
    static final String RUN = Long.toString(System.currentTimeMillis() % 1_000_000_000L, 36);
    static final String[] WORDS = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
        "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    };

    private StreamsCheck() {}

    public static void main(String[] args) {
        if (args.length < 1 || args.length > 2 || (args.length == 2 && !args[1].matches("--eos=(refused|works)"))) {
            System.err.println("usage: StreamsCheck BOOTSTRAP [--eos=refused|works]");
            System.exit(2);
        }
        String eos = args.length == 2 ? args[1].substring("--eos=".length()) : null;
        Checks.main("kafka-streams", () -> {
            try (Admin admin = JavaClientCheck.admin(args[0])) {
                Checks.section("word count, at_least_once", () -> wordCount(admin, args[0]));
                if (eos != null) {
                    Checks.section("exactly_once_v2 (" + eos + ")", () -> exactlyOnce(admin, args[0], eos));
                }
            }
        });
    }

    /** The app: lines in (key: line number), per-word counts out (String -> Long). */
    static Topology topology(String input, String output) {
        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word, Grouped.with("by-word", Serdes.String(), Serdes.String()))
                .count(Materialized.as("word-counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return b.build();
    }

    static Properties streamsProps(String bootstrap, String appId, Path stateDir, String guarantee) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        // Short intervals, so that the run is quick; every update goes out (no cache).
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, "500");
        if (guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            // initTransactions() gives up after this (default 60 s) if the broker does not answer.
            p.put(StreamsConfig.producerPrefix(ProducerConfig.MAX_BLOCK_MS_CONFIG), "10000");
        }
        return p;
    }

    /** A running app; failures of its threads are kept for the check to report. */
    static final class App implements AutoCloseable {
        final KafkaStreams streams;
        final AtomicReference<Throwable> error = new AtomicReference<>();

        App(Topology topology, Properties props) {
            streams = new KafkaStreams(topology, props);
            streams.setUncaughtExceptionHandler(e -> {
                error.compareAndSet(null, e);
                return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
        }

        void start() throws InterruptedException {
            streams.start();
            boolean running = waitFor(TIMEOUT, () -> streams.state() == KafkaStreams.State.RUNNING
                    || streams.state().hasCompletedShutdown() || error.get() != null);
            if (error.get() != null) {
                throw fail("the Streams app failed while starting: " + Checks.describe(error.get()));
            }
            check(running && streams.state() == KafkaStreams.State.RUNNING, "the Streams app is RUNNING",
                    streams.state());
        }

        /** Closes the app and leaves the group (Streams stays in it by default). */
        @Override
        public void close() {
            streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(TIMEOUT));
        }
    }

    /** `n` lines of 1-6 words from a fixed vocabulary; adds each word to `counts`. */
    static void produceLines(String bootstrap, String topic, int n, long seed, Map<String, Long> counts)
            throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Random rnd = new Random(seed);
        List<Future<?>> sends = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < n; i++) {
                StringBuilder line = new StringBuilder();
                int words = 1 + rnd.nextInt(6);
                for (int w = 0; w < words; w++) {
                    String word = WORDS[rnd.nextInt(WORDS.length)];
                    counts.merge(word, 1L, Long::sum);
                    line.append(w == 0 ? "" : " ").append(word);
                }
                sends.add(producer.send(new ProducerRecord<>(topic, "line-" + seed + "-" + i, line.toString())));
            }
            producer.flush();
        }
        for (Future<?> f : sends) {
            get(f, "send to " + topic);
        }
    }

    /**
     * Reads the output topic from `from` (next offset per partition) until every word's
     * last count equals `want`; each word's counts must go up by one from where the
     * previous run left it (`last`). Returns the new next offsets.
     */
    static long[] awaitCounts(String bootstrap, String output, long[] from, Map<String, Long> last,
            Map<String, Long> want, String label, boolean readCommitted) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (readCommitted) {
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        }
        long[] next = from.clone();
        Map<String, Long> seen = new HashMap<>(last);
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                tps.add(new TopicPartition(output, p));
            }
            c.assign(tps);
            for (TopicPartition tp : tps) {
                c.seek(tp, from[tp.partition()]);
            }
            long deadline = System.nanoTime() + TIMEOUT.toNanos() * 2;
            while (!seen.equals(want) && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    long before = seen.getOrDefault(r.key(), 0L);
                    if (r.value() == null || r.value() != before + 1) {
                        throw fail(label + ": " + output + "-" + r.partition() + "@" + r.offset() + " says "
                                + r.key() + "=" + r.value() + " after " + before + " (counts must go up by one)");
                    }
                    seen.put(r.key(), r.value());
                    next[r.partition()] = r.offset() + 1;
                }
            }
            // Nothing beyond the expected counts.
            for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(1000))) {
                throw fail(label + ": an extra update " + r.key() + "=" + r.value() + " at " + output + "-"
                        + r.partition() + "@" + r.offset());
            }
        }
        check(seen.equals(want), label + ": the output has the exact count of each of " + want.size() + " words ("
                + want.values().stream().mapToLong(Long::longValue).sum() + " words in all), each counted up by one",
                diff(seen, want));
        return next;
    }

    static String diff(Map<String, Long> got, Map<String, Long> want) {
        Map<String, String> d = new TreeMap<>();
        for (String w : WORDS) {
            if (!Objects.equals(got.get(w), want.get(w))) {
                d.put(w, got.get(w) + " (want " + want.get(w) + ")");
            }
        }
        return d.toString();
    }

    static void wordCount(Admin admin, String bootstrap) throws Exception {
        String appId = "compat-streams-" + RUN;
        String input = appId + "-in";
        String output = appId + "-out";
        String repartition = appId + "-by-word-repartition";
        String changelog = appId + "-word-counts-changelog";
        JavaClientCheck.create(admin, new NewTopic(input, PARTITIONS, (short) 1),
                new NewTopic(output, PARTITIONS, (short) 1));
        Path stateDir = stateDir("compat-streams-");
        try {
            Topology topology = topology(input, output);
            Map<String, Long> want = new TreeMap<>();
            produceLines(bootstrap, input, 400, 1, want);

            // --- Run 1 ---
            long[] next = new long[PARTITIONS];
            try (App app = new App(topology, streamsProps(bootstrap, appId, stateDir, StreamsConfig.AT_LEAST_ONCE))) {
                app.start();
                next = awaitCounts(bootstrap, output, next, Map.of(), want, "run 1", false);
                internalTopics(admin, repartition, changelog);
                ConsumerGroupDescription gd = get(admin.describeConsumerGroups(List.of(appId)).all(),
                        "describeConsumerGroups").get(appId);
                check(gd.type() == GroupType.CLASSIC && gd.groupState() == GroupState.STABLE
                                && "stream".equals(gd.partitionAssignor()) && gd.members().size() == 1,
                        "describeConsumerGroups " + appId + ": CLASSIC, STABLE, Streams' assignor \"stream\", "
                                + "one member", gd);
                Set<TopicPartition> assigned = gd.members().iterator().next().assignment().topicPartitions();
                check(assigned.size() == 2 * PARTITIONS && assigned.stream().allMatch(
                                tp -> tp.topic().equals(input) || tp.topic().equals(repartition)),
                        "the member is assigned the " + PARTITIONS + " input and " + PARTITIONS
                                + " repartition partitions", assigned);
                committedAndPurged(admin, appId, input, repartition);
                check(app.error.get() == null, "run 1: no stream thread failed", app.error.get());
            }
            ok("run 1 closed (leaving the group)");

            // --- Run 2: same state dir; counts go on from the committed offsets ---
            Map<String, Long> last = new TreeMap<>(want);
            produceLines(bootstrap, input, 300, 2, want);
            try (App app = new App(topology, streamsProps(bootstrap, appId, stateDir, StreamsConfig.AT_LEAST_ONCE))) {
                app.start();
                next = awaitCounts(bootstrap, output, next, last, want, "run 2 (restarted, same local state)", false);
                check(app.error.get() == null, "run 2: no stream thread failed", app.error.get());
            }

            // --- Run 3: local state wiped; the store comes back from the changelog ---
            last = new TreeMap<>(want);
            produceLines(bootstrap, input, 300, 3, want);
            try (App app = new App(topology, streamsProps(bootstrap, appId, stateDir, StreamsConfig.AT_LEAST_ONCE))) {
                app.streams.cleanUp();
                ok("run 3: the local state directory wiped (KafkaStreams.cleanUp)");
                app.start();
                awaitCounts(bootstrap, output, next, last, want, "run 3 (restarted, store restored from the changelog)",
                        false);
                check(app.error.get() == null, "run 3: no stream thread failed", app.error.get());
            }
            Map<String, Long> logged = latestPerKey(bootstrap, changelog);
            check(logged.equals(want), "the changelog " + changelog + " holds the final count of every word",
                    diff(logged, want));
        } finally {
            deleteTree(stateDir);
        }
    }

    /** Streams created both internal topics through the Admin API, with its configs. */
    static void internalTopics(Admin admin, String repartition, String changelog) throws Exception {
        Map<String, TopicDescription> desc = get(admin.describeTopics(List.of(repartition, changelog)).allTopicNames(),
                "describeTopics(internal topics)");
        for (String t : List.of(repartition, changelog)) {
            check(desc.get(t) != null && desc.get(t).partitions().size() == PARTITIONS,
                    "Streams created " + t + " with " + PARTITIONS + " partitions", desc.get(t));
        }
        ConfigResource rr = new ConfigResource(ConfigResource.Type.TOPIC, repartition);
        ConfigResource cr = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
        Map<ConfigResource, Config> cfg = get(admin.describeConfigs(List.of(rr, cr)).all(), "describeConfigs");
        Config r = cfg.get(rr);
        check("delete".equals(r.get("cleanup.policy").value()) && "-1".equals(r.get("retention.ms").value())
                        && "CreateTime".equals(r.get("message.timestamp.type").value()),
                "repartition topic: cleanup.policy=delete, retention.ms=-1, message.timestamp.type=CreateTime",
                List.of(r.get("cleanup.policy"), r.get("retention.ms"), r.get("message.timestamp.type")));
        Config c = cfg.get(cr);
        check("compact".equals(c.get("cleanup.policy").value())
                        && "CreateTime".equals(c.get("message.timestamp.type").value()),
                "changelog topic: cleanup.policy=compact, message.timestamp.type=CreateTime",
                List.of(c.get("cleanup.policy"), c.get("message.timestamp.type")));
    }

    /**
     * The group committed every input and repartition partition up to its end, and Streams
     * purged the repartition topic up to the committed offsets (DeleteRecords).
     */
    static void committedAndPurged(Admin admin, String appId, String input, String repartition) throws Exception {
        Map<TopicPartition, OffsetSpec> ends = new HashMap<>();
        for (String t : List.of(input, repartition)) {
            for (int p = 0; p < PARTITIONS; p++) {
                ends.put(new TopicPartition(t, p), OffsetSpec.latest());
            }
        }
        AtomicReference<Object> detail = new AtomicReference<>();
        boolean committed = waitFor(TIMEOUT, () -> {
            try {
                Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(appId)
                        .partitionsToOffsetAndMetadata().get();
                var latest = admin.listOffsets(ends).all().get();
                detail.set(offs + " vs ends " + latest);
                return ends.keySet().stream().allMatch(tp -> offs.get(tp) != null
                        && offs.get(tp).offset() == latest.get(tp).offset());
            } catch (Exception e) {
                detail.set(e);
                return false;
            }
        });
        check(committed, appId + " committed every input and repartition partition up to its end", detail.get());
        Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            earliest.put(new TopicPartition(repartition, p), OffsetSpec.earliest());
        }
        boolean purged = waitFor(TIMEOUT, () -> {
            try {
                Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(appId)
                        .partitionsToOffsetAndMetadata().get();
                var first = admin.listOffsets(earliest).all().get();
                detail.set("earliest " + first + " vs committed " + offs);
                return earliest.keySet().stream().allMatch(tp -> first.get(tp).offset() > 0
                        && first.get(tp).offset() == offs.get(tp).offset());
            } catch (Exception e) {
                detail.set(e);
                return false;
            }
        });
        check(purged, "Streams purged " + repartition + " up to the committed offsets (DeleteRecords)",
                detail.get());
    }

    /** The last value of each key in a topic of String -> Long, read from the beginning. */
    static Map<String, Long> latestPerKey(String bootstrap, String topic) throws Exception {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        Map<String, Long> latest = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, TIMEOUT);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp)) && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    latest.put(r.key(), r.value());
                }
            }
        }
        return latest;
    }

    /**
     * exactly_once_v2 needs transactions (InitProducerId with a transactional id, then
     * AddPartitionsToTxn, EndTxn, TxnOffsetCommit). "refused": the app must stop with
     * TransactionalIdAuthorizationException, what a broker without transactions answers;
     * "works": it must count exactly, reading the output read_committed.
     */
    static void exactlyOnce(Admin admin, String bootstrap, String expect) throws Exception {
        String appId = "compat-streams-eos-" + RUN;
        String input = appId + "-in";
        String output = appId + "-out";
        JavaClientCheck.create(admin, new NewTopic(input, PARTITIONS, (short) 1),
                new NewTopic(output, PARTITIONS, (short) 1));
        Map<String, Long> want = new TreeMap<>();
        produceLines(bootstrap, input, 200, 4, want);
        Path stateDir = stateDir("compat-streams-eos-");
        try (App app = new App(topology(input, output),
                streamsProps(bootstrap, appId, stateDir, StreamsConfig.EXACTLY_ONCE_V2))) {
            if (expect.equals("works")) {
                app.start();
                awaitCounts(bootstrap, output, new long[PARTITIONS], Map.of(), want, "exactly_once_v2", true);
                check(app.error.get() == null, "exactly_once_v2: no stream thread failed", app.error.get());
                return;
            }
            app.streams.start();
            boolean stopped = waitFor(Duration.ofSeconds(30), () -> app.error.get() != null
                    || app.streams.state() == KafkaStreams.State.ERROR);
            Throwable e = app.error.get();
            boolean txnRefused = false;
            for (Throwable t = e; t != null; t = t.getCause()) {
                txnRefused |= t instanceof TransactionalIdAuthorizationException;
            }
            check(stopped && txnRefused, "exactly_once_v2: the app stops with TransactionalIdAuthorizationException "
                    + "(no transactions on this broker)", e == null ? app.streams.state() : Checks.describe(e));
            Collection<?> out = latestPerKey(bootstrap, output).keySet();
            check(out.isEmpty(), "exactly_once_v2 refused: nothing reached the output", out);
        } finally {
            deleteTree(stateDir);
        }
    }

    /**
     * A fresh state directory under -Dcompat.state.dir (run.sh sets it; Streams warns
     * about state under the OS temp directory, which may be cleaned under it).
     */
    static Path stateDir(String prefix) throws IOException {
        String base = System.getProperty("compat.state.dir");
        if (base == null) {
            return Files.createTempDirectory(prefix);
        }
        Files.createDirectories(Path.of(base));
        return Files.createTempDirectory(Path.of(base), prefix);
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
