package runnel.compat;

import static runnel.compat.Checks.TIMEOUT;
import static runnel.compat.Checks.check;
import static runnel.compat.Checks.fail;
import static runnel.compat.Checks.get;
import static runnel.compat.Checks.ok;
import static runnel.compat.Checks.waitFor;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidTxnStateException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions with the Java client (kafka-clients 4.x, which uses transaction version 2
 * when the broker finalizes it):
 * <ol>
 * <li>transaction.version is finalized at 2 (describeFeatures);
 * <li>commit and abort: read_committed sees only committed records, read_uncommitted the
 * aborted ones too; an open transaction holds the last stable offset; each marker takes
 * an offset; the epoch is bumped at each transaction's end (TV2); describeTransactions,
 * listTransactions and describeProducers show the open transaction;
 * <li>zombie fencing: a second producer with the same transactional.id fences the first
 * (ProducerFencedException) and its open transaction is aborted;
 * <li>a transaction past transaction.timeout.ms is aborted by the broker;
 * <li>consume-transform-produce with sendOffsetsToTransaction: some transactions are
 * aborted and re-processed from the committed offsets, and (with --runnel) the broker is
 * killed with SIGKILL mid-transaction and between transactions and restarted on the same
 * data dir; the output holds each input exactly once, in order, and the group's committed
 * offsets are the input's ends.
 * </ol>
 * Usage: TransactionsCheck BOOTSTRAP (a running broker: no kill -9), or TransactionsCheck
 * --runnel BIN (starts BIN serve itself, so that it can kill and restart it).
 */
public final class TransactionsCheck {
    static final String RUN = Long.toString(System.currentTimeMillis() % 1_000_000_000L, 36);
    /** What the broker runs with: timed-out transactions are looked for every 200 ms. */
    static final List<String> SETTINGS = List.of("transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
            "group.initial.rebalance.delay.ms=0", "metrics.listener=");

    private TransactionsCheck() {}

    public static void main(String[] args) {
        boolean own = args.length == 2 && args[0].equals("--runnel");
        if (!own && args.length != 1) {
            System.err.println("usage: TransactionsCheck BOOTSTRAP | --runnel BIN");
            System.exit(2);
        }
        Checks.main("java-transactions", () -> {
            Broker broker = own ? new Broker(args[1], SETTINGS) : null;
            try {
                String bootstrap = own ? broker.start() : args[0];
                try (Admin admin = JavaClientCheck.admin(bootstrap)) {
                    Checks.section("transaction version", () -> transactionVersion(admin));
                    Checks.section("commit and abort", () -> commitAndAbort(admin, bootstrap));
                    Checks.section("zombie fencing", () -> fencing(admin, bootstrap));
                    Checks.section("transaction timeout", () -> timeout(admin, bootstrap));
                    Checks.section("consume-transform-produce, exactly once",
                            () -> consumeTransformProduce(admin, bootstrap, broker));
                }
            } finally {
                if (broker != null) {
                    broker.close();
                }
            }
        });
    }

    static String name(String base) {
        return base + "-" + RUN;
    }

    // --- clients ---------------------------------------------------------------------

    static KafkaProducer<String, String> txProducer(String bootstrap, String txnId, Map<String, String> extra) {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        pp.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        pp.putAll(extra);
        return new KafkaProducer<>(pp);
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, IsolationLevel iso,
            Map<String, String> extra) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, iso.toString());
        cp.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        cp.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        cp.putAll(extra);
        return new KafkaConsumer<>(cp);
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < n; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        return tps;
    }

    /**
     * Every record of the topic readable at `iso`, per partition in offset order, read
     * from the beginning up to the end offsets at that isolation level.
     */
    static Map<Integer, List<String>> readAll(String bootstrap, String topic, int n, IsolationLevel iso)
            throws Exception {
        Map<Integer, List<String>> got = new TreeMap<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, null, iso, Map.of())) {
            List<TopicPartition> tps = partitions(topic, n);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, TIMEOUT);
            for (TopicPartition tp : tps) {
                got.put(tp.partition(), new ArrayList<>());
            }
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    throw fail("reading " + topic + " " + iso + " did not reach the end offsets " + end);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got.get(r.partition()).add(r.value());
                }
            }
        }
        return got;
    }

    static Map<TopicPartition, Long> ends(Admin admin, List<TopicPartition> tps, IsolationLevel iso)
            throws Exception {
        Map<TopicPartition, OffsetSpec> q = new HashMap<>();
        for (TopicPartition tp : tps) {
            q.put(tp, OffsetSpec.latest());
        }
        Map<TopicPartition, Long> out = new HashMap<>();
        get(admin.listOffsets(q, new ListOffsetsOptions(iso)).all(), "listOffsets " + iso)
                .forEach((tp, info) -> out.put(tp, info.offset()));
        return out;
    }

    /**
     * Waits until no transaction is open on the partitions (LSO == high watermark) and
     * returns the ends: a commit or abort returns once decided, the markers follow (as in
     * Kafka, which answers EndTxn before it writes them).
     */
    static Map<TopicPartition, Long> stable(Admin admin, List<TopicPartition> tps) throws Exception {
        return stable(admin, tps, -1);
    }

    /** As above; with `want` >= 0, also until every partition ends at `want`. */
    static Map<TopicPartition, Long> stable(Admin admin, List<TopicPartition> tps, long want) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            Map<TopicPartition, Long> lso = ends(admin, tps, IsolationLevel.READ_COMMITTED);
            Map<TopicPartition, Long> hw = ends(admin, tps, IsolationLevel.READ_UNCOMMITTED);
            if (lso.equals(hw) && (want < 0 || hw.values().stream().allMatch(v -> v == want))) {
                return hw;
            }
            if (System.nanoTime() > deadline) {
                throw fail("the LSO " + lso + " and the high watermark " + hw + " did not both reach "
                        + (want < 0 ? "the same offset" : want) + " within 30 s");
            }
            Thread.sleep(50);
        }
    }

    static TransactionDescription describeTxn(Admin admin, String id) throws Exception {
        return get(admin.describeTransactions(List.of(id)).description(id), "describeTransactions(" + id + ")");
    }

    /**
     * describeTransactions until the state is one of `want` (30 s at most): after EndTxn
     * the coordinator is in Prepare* until the markers are written.
     */
    static TransactionDescription awaitTxn(Admin admin, String id, TransactionState... want) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            TransactionDescription d = describeTxn(admin, id);
            if (List.of(want).contains(d.state()) || System.nanoTime() > deadline) {
                return d;
            }
            Thread.sleep(50);
        }
    }

    /** Whether the producer's TransactionManager runs transaction version 2 (a private field). */
    static String clientTv(KafkaProducer<?, ?> p) {
        try {
            Field f = KafkaProducer.class.getDeclaredField("transactionManager");
            f.setAccessible(true);
            Object tm = f.get(p);
            Object v2 = tm.getClass().getMethod("isTransactionV2Enabled").invoke(tm);
            return Boolean.TRUE.equals(v2) ? "2" : "1";
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "unknown (" + e + ")";
        }
    }

    static Throwable cause(Throwable e, Class<? extends Throwable> cls) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (cls.isInstance(t)) {
                return t;
            }
        }
        return null;
    }

    // --- the checks ------------------------------------------------------------------

    static void transactionVersion(Admin admin) throws Exception {
        FeatureMetadata fm = get(admin.describeFeatures().featureMetadata(), "describeFeatures");
        FinalizedVersionRange tv = fm.finalizedFeatures().get("transaction.version");
        check(tv != null && tv.maxVersionLevel() == 2, "describeFeatures: transaction.version is finalized at 2",
                fm.finalizedFeatures());
    }

    static void send(KafkaProducer<String, String> p, String topic, int partitions, String prefix, int n)
            throws Exception {
        List<Future<?>> fs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            fs.add(p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, prefix + "-" + i)));
        }
        p.flush();
        for (Future<?> f : fs) {
            get(f, "send " + prefix);
        }
    }

    static List<String> values(String prefix, int n, int partitions, int partition) {
        List<String> v = new ArrayList<>();
        for (int i = partition; i < n; i += partitions) {
            v.add(prefix + "-" + i);
        }
        return v;
    }

    static void commitAndAbort(Admin admin, String bootstrap) throws Exception {
        String topic = name("java-txn");
        String id = name("java-txn-basic");
        JavaClientCheck.create(admin, new NewTopic(topic, 2, (short) 1));
        List<TopicPartition> tps = partitions(topic, 2);
        List<Integer> epochs = new ArrayList<>();
        try (KafkaProducer<String, String> p = txProducer(bootstrap, id, Map.of())) {
            p.initTransactions();
            ok("initTransactions() with transactional.id " + id);
            p.beginTransaction();
            String tv = clientTv(p);
            System.out.println("  the client runs transaction version " + tv);
            if (!tv.startsWith("unknown")) {
                check(tv.equals("2"), "the producer's TransactionManager enabled transaction version 2", tv);
            }
            send(p, topic, 2, "commit1", 10);
            p.commitTransaction();
            TransactionDescription d = awaitTxn(admin, id, TransactionState.COMPLETE_COMMIT);
            check(d.state() == TransactionState.COMPLETE_COMMIT, "describeTransactions after commit: CompleteCommit",
                    d);
            epochs.add(d.producerEpoch());

            // An open transaction: the LSO stays at its first offset, the HW moves on.
            Map<TopicPartition, Long> before = stable(admin, tps, 6);
            check(tps.stream().allMatch(tp -> before.get(tp) == 6),
                    "after the commit each partition ends at 6: 5 records and the marker", before);
            p.beginTransaction();
            send(p, topic, 2, "aborted", 10);
            Map<TopicPartition, Long> lso = ends(admin, tps, IsolationLevel.READ_COMMITTED);
            Map<TopicPartition, Long> hw = ends(admin, tps, IsolationLevel.READ_UNCOMMITTED);
            check(lso.equals(before) && tps.stream().allMatch(tp -> hw.get(tp) == before.get(tp) + 5),
                    "an open transaction holds the last stable offset (read_committed listOffsets) at its first "
                            + "offset while the high watermark moves on",
                    "LSO " + lso + ", HW " + hw + ", before " + before);
            d = describeTxn(admin, id);
            check(d.state() == TransactionState.ONGOING && d.topicPartitions().equals(Set.copyOf(tps)),
                    "describeTransactions: Ongoing, with both partitions", d);
            Map<String, TransactionListing> listed = get(admin.listTransactions().all(), "listTransactions").stream()
                    .collect(Collectors.toMap(TransactionListing::transactionalId, l -> l));
            check(listed.containsKey(id) && listed.get(id).state() == TransactionState.ONGOING
                            && listed.get(id).producerId() == d.producerId(),
                    "listTransactions lists it as Ongoing with its producer id", listed.get(id));
            List<ProducerState> ps = get(admin.describeProducers(List.of(tps.get(0))).partitionResult(tps.get(0)),
                    "describeProducers").activeProducers();
            long pid = d.producerId();
            check(ps.stream().anyMatch(s -> s.producerId() == pid
                            && s.currentTransactionStartOffset().orElse(-1) == before.get(tps.get(0))),
                    "describeProducers: the producer's current transaction starts at " + before.get(tps.get(0)), ps);
            p.abortTransaction();
            d = awaitTxn(admin, id, TransactionState.COMPLETE_ABORT);
            check(d.state() == TransactionState.COMPLETE_ABORT, "describeTransactions after abort: CompleteAbort", d);
            epochs.add(d.producerEpoch());
            Map<TopicPartition, Long> after = stable(admin, tps, 12);
            check(tps.stream().allMatch(tp -> after.get(tp) == before.get(tp) + 6),
                    "after the abort the LSO is the end again, past the 5 aborted records and the marker", after);

            p.beginTransaction();
            send(p, topic, 2, "commit2", 10);
            p.commitTransaction();
            epochs.add(awaitTxn(admin, id, TransactionState.COMPLETE_COMMIT).producerEpoch());
        }
        Map<TopicPartition, Long> end = stable(admin, tps, 18);
        check(epochs.get(0) >= 1 && epochs.get(1) == epochs.get(0) + 1 && epochs.get(2) == epochs.get(1) + 1,
                "the producer epoch is bumped by one at each transaction's end (transaction version 2)", epochs);
        Map<Integer, List<String>> rc = readAll(bootstrap, topic, 2, IsolationLevel.READ_COMMITTED);
        Map<Integer, List<String>> ru = readAll(bootstrap, topic, 2, IsolationLevel.READ_UNCOMMITTED);
        for (int part = 0; part < 2; part++) {
            List<String> wantRc = new ArrayList<>(values("commit1", 10, 2, part));
            wantRc.addAll(values("commit2", 10, 2, part));
            check(rc.get(part).equals(wantRc), "read_committed " + topic + "-" + part
                    + ": the two committed transactions' records, in order, none of the aborted", rc.get(part));
            List<String> wantRu = new ArrayList<>(values("commit1", 10, 2, part));
            wantRu.addAll(values("aborted", 10, 2, part));
            wantRu.addAll(values("commit2", 10, 2, part));
            check(ru.get(part).equals(wantRu),
                    "read_uncommitted " + topic + "-" + part + ": the aborted records too, in order", ru.get(part));
        }
        check(tps.stream().allMatch(tp -> end.get(tp) == 3 * 5 + 3),
                "each partition ends at 18: 15 records and 3 control markers", end);
    }

    static void fencing(Admin admin, String bootstrap) throws Exception {
        String topic = name("java-txn-fence");
        String id = name("java-txn-fence");
        JavaClientCheck.create(admin, new NewTopic(topic, 1, (short) 1));
        try (KafkaProducer<String, String> zombie = txProducer(bootstrap, id, Map.of());
                KafkaProducer<String, String> p2 = txProducer(bootstrap, id, Map.of())) {
            zombie.initTransactions();
            zombie.beginTransaction();
            send(zombie, topic, 1, "zombie", 3);
            TransactionDescription open = describeTxn(admin, id);
            long pid = open.producerId();
            p2.initTransactions();
            ok("a second producer with the same transactional.id: initTransactions() succeeds while the first "
                    + "has a transaction open");
            TransactionDescription d = awaitTxn(admin, id, TransactionState.COMPLETE_ABORT, TransactionState.EMPTY);
            check(d.producerId() == pid && (d.state() == TransactionState.COMPLETE_ABORT
                            || d.state() == TransactionState.EMPTY) && d.topicPartitions().isEmpty(),
                    "the first producer's open transaction was aborted (describeTransactions: Empty or "
                            + "CompleteAbort, no partitions)", d);
            // Kafka 4.4 (TV2): the fence's abort bumps the epoch once, the new InitProducerId once.
            check(d.producerEpoch() == open.producerEpoch() + 2, "the second producer's epoch is the first's + 2 "
                    + "(one bump for the fencing abort, one for its InitProducerId), as Kafka 4.4 gives",
                    d.producerEpoch() + " after " + open.producerEpoch());
            Throwable e = null;
            try {
                zombie.commitTransaction();
            } catch (KafkaException ex) {
                e = ex;
            }
            check(e != null && cause(e, ProducerFencedException.class) != null,
                    "the first producer's commitTransaction() fails with ProducerFencedException",
                    e == null ? "it committed" : Checks.describe(e));
            p2.beginTransaction();
            send(p2, topic, 1, "current", 3);
            p2.commitTransaction();
            ok("the second producer commits");
            stable(admin, partitions(topic, 1));
            zombie.close(Duration.ZERO);
        }
        Map<Integer, List<String>> rc = readAll(bootstrap, topic, 1, IsolationLevel.READ_COMMITTED);
        check(rc.get(0).equals(values("current", 3, 1, 0)),
                "read_committed: only the second producer's records", rc.get(0));
        Map<Integer, List<String>> ru = readAll(bootstrap, topic, 1, IsolationLevel.READ_UNCOMMITTED);
        List<String> all = new ArrayList<>(values("zombie", 3, 1, 0));
        all.addAll(values("current", 3, 1, 0));
        check(ru.get(0).equals(all), "read_uncommitted: the zombie's aborted records too", ru.get(0));
    }

    static void timeout(Admin admin, String bootstrap) throws Exception {
        String topic = name("java-txn-timeout");
        String id = name("java-txn-timeout");
        JavaClientCheck.create(admin, new NewTopic(topic, 1, (short) 1));
        List<TopicPartition> tps = partitions(topic, 1);
        int epoch;
        try (KafkaProducer<String, String> p = txProducer(bootstrap, id,
                Map.of(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "1500"))) {
            p.initTransactions();
            p.beginTransaction();
            send(p, topic, 1, "expired", 4);
            epoch = describeTxn(admin, id).producerEpoch();
            long t0 = System.nanoTime();
            boolean moved = waitFor(Duration.ofSeconds(30), () -> {
                try {
                    return ends(admin, tps, IsolationLevel.READ_COMMITTED).get(tps.get(0)) == 5;
                } catch (Exception e) {
                    return false;
                }
            });
            check(moved, "transaction.timeout.ms=1500: the broker aborts the open transaction and the LSO moves "
                    + "past it (" + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms)",
                    ends(admin, tps, IsolationLevel.READ_COMMITTED));
            TransactionDescription d = awaitTxn(admin, id, TransactionState.COMPLETE_ABORT);
            check(d.state() == TransactionState.COMPLETE_ABORT && d.producerEpoch() == epoch + 1,
                    "describeTransactions: CompleteAbort, the epoch bumped once (the fence)", d);
            Throwable e = null;
            try {
                p.commitTransaction();
            } catch (KafkaException ex) {
                e = ex;
            }
            // The old epoch is the fenced one's last epoch: Kafka takes its EndTxn for a retry and
            // answers INVALID_TXN_STATE (a commit of an aborted transaction).
            check(e != null && cause(e, InvalidTxnStateException.class) != null,
                    "commitTransaction() of the timed-out transaction fails with InvalidTxnStateException "
                            + "(INVALID_TXN_STATE, as Kafka 4.4 answers)",
                    e == null ? "it committed" : Checks.describe(e));
        }
        try (KafkaProducer<String, String> p = txProducer(bootstrap, id, Map.of())) {
            p.initTransactions();
            int next = describeTxn(admin, id).producerEpoch();
            check(next == epoch + 2, "a new producer's InitProducerId bumps once more (epoch + 2)",
                    next + " after " + epoch);
            p.beginTransaction();
            send(p, topic, 1, "after", 2);
            p.commitTransaction();
        }
        stable(admin, tps);
        Map<Integer, List<String>> rc = readAll(bootstrap, topic, 1, IsolationLevel.READ_COMMITTED);
        check(rc.get(0).equals(values("after", 2, 1, 0)),
                "read_committed: none of the timed-out transaction, then a new producer's commit", rc.get(0));
        Map<Integer, List<String>> ru = readAll(bootstrap, topic, 1, IsolationLevel.READ_UNCOMMITTED);
        check(ru.get(0).size() == 6 && ru.get(0).containsAll(values("expired", 4, 1, 0)),
                "read_uncommitted: the timed-out records too", ru.get(0));
    }

    static final int CTP_PARTITIONS = 3;
    static final int CTP_RECORDS = 600;
    /** The transactions the broker is killed in and after (not aborted ones: txns % 3 != 2). */
    static final int KILL_OPEN = 10;
    static final int KILL_BETWEEN = 19;

    /**
     * Reads the input in transactions of at most 25 records, writes "out-" + each value to
     * the same partition of the output with the offsets, and commits; every third
     * transaction is aborted and re-read from the committed offsets. With a broker of its
     * own, it is killed (SIGKILL) once with a transaction open and once between two, and
     * restarted on the same data dir and port. A failed transaction closes both clients;
     * new ones go on from the committed offsets (the new producer fences the old one).
     */
    static void consumeTransformProduce(Admin admin, String bootstrap, Broker broker) throws Exception {
        String in = name("java-ctp-in");
        String out = name("java-ctp-out");
        String group = name("java-ctp");
        String id = name("java-ctp");
        JavaClientCheck.create(admin, new NewTopic(in, CTP_PARTITIONS, (short) 1),
                new NewTopic(out, CTP_PARTITIONS, (short) 1));
        Properties pp = JavaClientCheck.producerProps(bootstrap, "none");
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp)) {
            for (int i = 0; i < CTP_RECORDS; i++) {
                p.send(new ProducerRecord<>(in, i % CTP_PARTITIONS, ("k" + i).getBytes(StandardCharsets.UTF_8),
                        ("in-" + i).getBytes(StandardCharsets.UTF_8)));
            }
            p.flush();
        }
        List<TopicPartition> inTps = partitions(in, CTP_PARTITIONS);
        Map<TopicPartition, Long> inEnd = ends(admin, inTps, IsolationLevel.READ_UNCOMMITTED);
        check(inEnd.values().stream().mapToLong(Long::longValue).sum() == CTP_RECORDS,
                CTP_RECORDS + " input records in " + in, inEnd);

        int txns = 0;
        int commits = 0;
        int aborts = 0;
        int failures = 0;
        int kills = 0;
        boolean checkedAbortedOffsets = false;
        KafkaProducer<String, String> p = null;
        KafkaConsumer<String, String> c = null;
        long deadline = System.nanoTime() + Duration.ofSeconds(100).toNanos();
        boolean done = false;
        try {
            while (!done) {
                if (System.nanoTime() > deadline) {
                    throw fail("the loop did not finish within 100 s (" + commits + " commits, " + aborts
                            + " aborts, " + failures + " failures; committed "
                            + committed(admin, group) + ", want " + inEnd + ")");
                }
                if (p == null) {
                    p = txProducer(bootstrap, id, Map.of(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "10000"));
                    p.initTransactions();
                    c = consumer(bootstrap, group, IsolationLevel.READ_COMMITTED,
                            Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "25",
                                    ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000",
                                    ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000"));
                    c.subscribe(List.of(in));
                }
                try {
                    ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(300));
                    if (recs.isEmpty()) {
                        done = committed(admin, group).equals(inEnd);
                        continue;
                    }
                    p.beginTransaction();
                    txns++;
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> r : recs) {
                        p.send(new ProducerRecord<>(out, r.partition(), r.key(), "out-" + r.value()));
                        offsets.put(new TopicPartition(r.topic(), r.partition()),
                                new OffsetAndMetadata(r.offset() + 1));
                    }
                    p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                    if (txns % 3 == 2) {
                        p.flush();
                        Map<TopicPartition, Long> before = committed(admin, group);
                        p.abortTransaction();
                        aborts++;
                        if (!checkedAbortedOffsets) {
                            Map<TopicPartition, Long> after = committed(admin, group);
                            check(after.equals(before), "the offsets sent in an aborted transaction are not applied "
                                    + "(the group's committed offsets stay at " + before + ")", after);
                            checkedAbortedOffsets = true;
                        }
                        rewind(c);
                        continue;
                    }
                    if (broker != null && txns == KILL_OPEN) {
                        // Mid-transaction: its records and offsets are on the broker, no EndTxn yet.
                        p.flush();
                        broker.kill9AndRestart();
                        kills++;
                        System.out.println("  broker killed (SIGKILL) with transaction " + txns
                                + " open, and restarted on the same data dir");
                    }
                    p.commitTransaction();
                    commits++;
                    if (broker != null && txns == KILL_BETWEEN) {
                        broker.kill9AndRestart();
                        kills++;
                        System.out.println("  broker killed (SIGKILL) after transaction " + txns
                                + " committed, and restarted on the same data dir");
                    }
                } catch (KafkaException e) {
                    failures++;
                    System.out.println("  transaction " + txns + " failed (" + Checks.describe(e)
                            + "): new clients go on from the committed offsets");
                    closeQuietly(p, c);
                    p = null;
                    c = null;
                }
            }
        } finally {
            closeQuietly(p, c);
        }
        ok("the loop processed the input: " + txns + " transactions, " + commits + " committed, " + aborts
                + " aborted, " + failures + " failed (clients recreated), " + kills + " broker kills");
        check(aborts >= 3, "at least 3 transactions were aborted and re-processed", aborts);
        if (broker != null) {
            check(kills == 2, "the broker was killed with SIGKILL twice (mid-transaction, between transactions)",
                    kills);
        }
        stable(admin, partitions(out, CTP_PARTITIONS));
        Map<Integer, List<String>> rc = readAll(bootstrap, out, CTP_PARTITIONS, IsolationLevel.READ_COMMITTED);
        for (int part = 0; part < CTP_PARTITIONS; part++) {
            List<String> want = values("out-in", CTP_RECORDS, CTP_PARTITIONS, part);
            List<String> got = rc.get(part);
            check(got.equals(want), "read_committed " + out + "-" + part + ": each of its " + want.size()
                    + " inputs exactly once, in order", summarize(got, want));
        }
        Map<Integer, List<String>> ru = readAll(bootstrap, out, CTP_PARTITIONS, IsolationLevel.READ_UNCOMMITTED);
        int all = ru.values().stream().mapToInt(List::size).sum();
        check(all > CTP_RECORDS, "read_uncommitted " + out + " also has the aborted transactions' records ("
                + all + " records for " + CTP_RECORDS + " inputs)", all);
        Map<TopicPartition, Long> offs = committed(admin, group);
        check(offs.equals(inEnd), "the group's committed offsets are the input's end offsets", offs);
    }

    /** The group's committed offsets (Admin listConsumerGroupOffsets). */
    static Map<TopicPartition, Long> committed(Admin admin, String group) throws Exception {
        Map<TopicPartition, Long> out = new HashMap<>();
        get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), "listConsumerGroupOffsets")
                .forEach((tp, o) -> {
                    if (o != null) {
                        out.put(tp, o.offset());
                    }
                });
        return out;
    }

    /** After an abort: back to the committed offsets (the start when none). */
    static void rewind(KafkaConsumer<String, String> c) {
        Set<TopicPartition> assigned = c.assignment();
        Map<TopicPartition, OffsetAndMetadata> offs = c.committed(assigned);
        for (TopicPartition tp : assigned) {
            OffsetAndMetadata o = offs.get(tp);
            if (o == null) {
                c.seekToBeginning(List.of(tp));
            } else {
                c.seek(tp, o.offset());
            }
        }
    }

    static void closeQuietly(KafkaProducer<?, ?> p, KafkaConsumer<?, ?> c) {
        try {
            if (p != null) {
                p.close(Duration.ofSeconds(5));
            }
        } catch (RuntimeException e) {
            System.out.println("  (closing the producer: " + Checks.describe(e) + ")");
        }
        try {
            if (c != null) {
                c.close(CloseOptions.timeout(Duration.ofSeconds(5)));
            }
        } catch (RuntimeException e) {
            System.out.println("  (closing the consumer: " + Checks.describe(e) + ")");
        }
    }

    /** What differs between two lists: sizes, duplicates and what is missing. */
    static String summarize(List<String> got, List<String> want) {
        Map<String, Integer> n = new TreeMap<>();
        for (String s : got) {
            n.merge(s, 1, Integer::sum);
        }
        List<String> dups = n.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey).limit(10)
                .toList();
        List<String> missing = want.stream().filter(s -> !n.containsKey(s)).limit(10).toList();
        return got.size() + " records (want " + want.size() + "); duplicates " + dups + "; missing " + missing;
    }

    // --- a runnel broker this check can kill and restart ---------------------------------

    /** `BIN serve` on a temp data dir; restarts reuse the dir and the port. */
    static final class Broker {
        final String bin;
        final List<String> settings;
        final Path dir;
        Process proc;
        int port = 0;

        Broker(String bin, List<String> settings) throws IOException {
            this.bin = bin;
            this.settings = settings;
            this.dir = Files.createTempDirectory("runnel-compat-txn-");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                if (proc != null && proc.isAlive()) {
                    proc.destroyForcibly();
                }
            }));
        }

        /** Starts the broker; returns its bootstrap address. */
        String start() throws Exception {
            List<String> cmd = new ArrayList<>(List.of(bin, "serve", "--data-dir", dir.resolve("data").toString(),
                    "--listen", "127.0.0.1:" + port));
            for (String s : settings) {
                cmd.add("--set");
                cmd.add(s);
            }
            ProcessBuilder pb = new ProcessBuilder(cmd);
            // The broker reads RUNNEL_* variables as settings: start it without any.
            pb.environment().keySet().removeIf(k -> k.startsWith("RUNNEL_"));
            pb.environment().putIfAbsent("RUST_LOG", "info");
            pb.redirectError(ProcessBuilder.Redirect.appendTo(dir.resolve("stderr.log").toFile()));
            pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            proc = pb.start();
            CompletableFuture<String> first = new CompletableFuture<>();
            Process mine = proc;
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(
                        new InputStreamReader(mine.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        first.complete(line);
                    }
                } catch (IOException e) {
                    first.completeExceptionally(e);
                }
                first.complete("");
            });
            reader.setDaemon(true);
            reader.start();
            String line;
            try {
                line = first.get(60, TimeUnit.SECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                line = "(nothing within 60 s)";
            }
            String prefix = "runnel listening on ";
            if (!line.startsWith(prefix)) {
                throw fail("the broker gave no ready line (got '" + line + "'); its stderr ends: " + stderrTail());
            }
            String bootstrap = line.substring(prefix.length()).trim();
            port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
            System.out.println("broker pid " + proc.pid() + " listening on " + bootstrap + " (data " + dir + ")");
            return bootstrap;
        }

        /** SIGKILL (Process.destroyForcibly on Unix), then the same command again. */
        void kill9AndRestart() throws Exception {
            proc.destroyForcibly();
            if (!proc.waitFor(30, TimeUnit.SECONDS)) {
                throw fail("the broker did not die of SIGKILL");
            }
            check(proc.exitValue() == 128 + 9,
                    "the broker died of SIGKILL", proc.exitValue());
            start();
        }

        String stderrTail() {
            try {
                List<String> lines = Files.readAllLines(dir.resolve("stderr.log"), StandardCharsets.UTF_8);
                return "\n" + String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
            } catch (IOException e) {
                return "(unreadable: " + e + ")";
            }
        }

        /** SIGTERM; it must stop within 30 s. Keeps the data dir when a check failed. */
        void close() throws Exception {
            proc.destroy();
            if (!proc.waitFor(30, TimeUnit.SECONDS)) {
                proc.destroyForcibly();
                throw fail("the broker did not stop within 30 s of SIGTERM");
            }
            if (Checks.anyFailed()) {
                System.err.println("----- the broker's stderr (" + dir + ") ends:" + stderrTail());
                return;
            }
            try (Stream<Path> s = Files.walk(dir)) {
                for (Path path : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(path);
                }
            }
        }
    }
}
