package runnel.compat.eventhubs;

import static runnel.compat.eventhubs.Checks.check;
import static runnel.compat.eventhubs.Checks.checkCondition;
import static runnel.compat.eventhubs.Checks.fail;
import static runnel.compat.eventhubs.Checks.ok;
import static runnel.compat.eventhubs.Checks.section;
import static runnel.compat.eventhubs.Checks.waitFor;

import com.azure.core.amqp.AmqpRetryOptions;
import com.azure.core.amqp.exception.AmqpErrorCondition;
import com.azure.messaging.eventhubs.EventData;
import com.azure.messaging.eventhubs.EventDataBatch;
import com.azure.messaging.eventhubs.EventHubClientBuilder;
import com.azure.messaging.eventhubs.EventHubConsumerAsyncClient;
import com.azure.messaging.eventhubs.EventHubProducerClient;
import com.azure.messaging.eventhubs.EventHubProperties;
import com.azure.messaging.eventhubs.PartitionProperties;
import com.azure.messaging.eventhubs.models.CreateBatchOptions;
import com.azure.messaging.eventhubs.models.EventPosition;
import com.azure.messaging.eventhubs.models.PartitionEvent;
import com.azure.messaging.eventhubs.models.ReceiveOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import reactor.core.Disposable;

/**
 * The Azure SDK for Java (azure-messaging-eventhubs) against Runnel's Event Hubs AMQP
 * endpoint, with connection strings as the emulator's are written
 * ({@code Endpoint=sb://HOST:PORT;...;UseDevelopmentEmulator=true}: plain AMQP on the
 * endpoint's port), plus kafka-clients on the same hubs.
 *
 * <p>Arguments: KAFKA_BOOTSTRAP AMQP_ADDR MANAGE_CS SEND_CS LISTEN_CS, the connection
 * strings of a Manage, a Send and a Listen policy without EntityPath.
 */
public final class EventHubsAmqpCheck {
    private EventHubsAmqpCheck() {}

    static final Duration WAIT = Duration.ofSeconds(30);
    static final String HUB = "eh1"; // 4 partitions: properties and sends
    static final String RECV_HUB = "eh-recv"; // 2 partitions: positions (0) and epochs (1)
    static final String KAFKA_HUB = "eh-kafka"; // 1 partition: Kafka <-> AMQP

    static String kafkaBootstrap;

    static EventHubClientBuilder builder(String cs, String hub) {
        // Few, short retries: a refused call must fail within the check's time.
        return new EventHubClientBuilder().connectionString(cs, hub)
                .retryOptions(new AmqpRetryOptions().setMaxRetries(1)
                        .setTryTimeout(Duration.ofSeconds(15)).setDelay(Duration.ofMillis(500)));
    }

    static EventHubProducerClient producer(String cs, String hub) {
        return builder(cs, hub).buildProducerClient();
    }

    static EventHubConsumerAsyncClient consumer(String cs, String hub) {
        return builder(cs, hub).consumerGroup("$Default").buildAsyncConsumerClient();
    }

    /** Sends `events` as one batch made with `options`. */
    static void sendBatch(EventHubProducerClient p, CreateBatchOptions options, List<EventData> events) {
        EventDataBatch batch = p.createBatch(options);
        for (EventData e : events) {
            if (!batch.tryAdd(e)) {
                throw fail("event did not fit in a batch of " + batch.getMaxSizeInBytes() + " bytes");
            }
        }
        p.send(batch);
    }

    static EventData event(String body) {
        return new EventData(body.getBytes(StandardCharsets.UTF_8));
    }

    static String body(EventData e) {
        return new String(e.getBody(), StandardCharsets.UTF_8);
    }

    /** The first `n` events from `position`, or a failed check after WAIT. */
    static List<EventData> receive(EventHubConsumerAsyncClient c, String partition,
            EventPosition position, int n) {
        List<EventData> got = c.receiveFromPartition(partition, position).take(n)
                .map(PartitionEvent::getData).collectList().block(WAIT);
        if (got == null || got.size() != n) {
            throw fail("received " + got + " from " + position + ", wanted " + n + " events");
        }
        return got;
    }

    static List<String> bodies(List<EventData> events) {
        List<String> out = new ArrayList<>();
        for (EventData e : events) {
            out.add(body(e));
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: EventHubsAmqpCheck KAFKA_BOOTSTRAP AMQP_ADDR MANAGE_CS SEND_CS LISTEN_CS");
            System.exit(2);
        }
        kafkaBootstrap = args[0];
        String manage = args[2];
        String send = args[3];
        String listen = args[4];
        System.out.println("== event-hubs-java: azure-messaging-eventhubs "
                + EventHubClientBuilder.class.getPackage().getImplementationVersion()
                + " against AMQP " + args[1] + " (Java " + System.getProperty("java.version") + ")");
        try (Admin admin = Admin.create(kafkaProps())) {
            admin.createTopics(List.of(new NewTopic(HUB, 4, (short) 1),
                    new NewTopic(RECV_HUB, 2, (short) 1), new NewTopic(KAFKA_HUB, 1, (short) 1)))
                    .all().get();
        }
        Instant created = Instant.now();

        // An idle connection through a counting relay, opened now and checked last, so the
        // other sections run while it idles past the SDK's 60 s idle timeout.
        TcpProxy relay = new TcpProxy(args[1]);
        String relayed = manage.replace("sb://" + args[1], "sb://" + relay.address());
        EventHubProducerClient idle = producer(relayed, HUB);
        java.util.concurrent.atomic.AtomicLong idleFrom = new java.util.concurrent.atomic.AtomicLong(System.nanoTime());
        section("idle connection opened", () -> {
            String name = idle.getEventHubProperties().getName();
            idleFrom.set(System.nanoTime());
            check(HUB.equals(name) && relay.opened.get() == 1, "a producer through the relay reads the hub",
                    relay.opened.get());
        });

        section("properties and sends", () -> propertiesAndSends(manage, created));
        section("receive positions", () -> positions(manage));
        section("epochs", () -> epochs(manage));
        section("receiver limit", () -> receiverLimit(manage));
        section("authorization", () -> authorization(manage, send, listen));
        section("kafka and amqp", () -> kafkaAndAmqp(manage));
        section("idle connection", () -> {
            long idleSeconds = Long.getLong("compat.idle.seconds", 150);
            long idleStart = idleFrom.get();
            long left = idleSeconds * 1000 - (System.nanoTime() - idleStart) / 1_000_000;
            if (left > 0) {
                System.out.println("  (idling " + left / 1000 + " s more)");
                Thread.sleep(left);
            }
            List<String> reads = new ArrayList<>();
            for (long t : relay.fromBroker) {
                if (t > idleStart) {
                    reads.add(String.format("+%.1f", (t - idleStart) / 1e9));
                }
            }
            System.out.println("  (reads from the broker while idle, s after the first call: " + reads + ")");
            check(relay.closed.get() == 0 && relay.opened.get() == 1,
                    "the connection stayed open through " + idleSeconds + " s idle (60 s client idle timeout)",
                    relay.opened.get() + " opened, " + relay.closed.get() + " closed");
            check(HUB.equals(idle.getEventHubProperties().getName()) && relay.opened.get() == 1,
                    "the idle producer reads the hub on the same connection", relay.opened.get() + " opened");
        });
        idle.close();
        relay.close();
        Checks.exit("event-hubs-java");
    }

    static Properties kafkaProps() {
        Properties p = new Properties();
        p.put("bootstrap.servers", kafkaBootstrap);
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "20000");
        return p;
    }

    static void checkPartition(PartitionProperties pp, String id, long count, Instant after,
            String when) {
        String at = "partition " + id + " " + when + ": ";
        check(pp.getId().equals(id) && pp.getEventHubName().equals(HUB), at + "id and hub",
                pp.getId() + "/" + pp.getEventHubName());
        check(pp.getBeginningSequenceNumber() == 0, at + "beginningSequenceNumber 0",
                pp.getBeginningSequenceNumber());
        check(pp.getLastEnqueuedSequenceNumber() == count - 1,
                at + "lastEnqueuedSequenceNumber " + (count - 1), pp.getLastEnqueuedSequenceNumber());
        check(String.valueOf(count - 1).equals(pp.getLastEnqueuedOffset()),
                at + "lastEnqueuedOffset \"" + (count - 1) + "\"", pp.getLastEnqueuedOffset());
        check(pp.isEmpty() == (count == 0), at + "isEmpty " + (count == 0), pp.isEmpty());
        Instant t = pp.getLastEnqueuedTime();
        if (count == 0) {
            check(Instant.EPOCH.equals(t), at + "lastEnqueuedTime is the epoch", t);
        } else {
            check(t != null && !t.isBefore(after.minusSeconds(5)) && !t.isAfter(Instant.now().plusSeconds(5)),
                    at + "lastEnqueuedTime is the last send's", t);
        }
    }

    static void propertiesAndSends(String cs, Instant created) throws Exception {
        try (EventHubProducerClient p = producer(cs, HUB)) {
            EventHubProperties hp = p.getEventHubProperties();
            check(HUB.equals(hp.getName()), "getEventHubProperties name", hp.getName());
            List<String> ids = new ArrayList<>();
            hp.getPartitionIds().forEach(ids::add);
            check(ids.equals(List.of("0", "1", "2", "3")), "partition ids", ids);
            Instant c = hp.getCreatedAt();
            check(c != null && Math.abs(Duration.between(created, c).toSeconds()) < 60,
                    "createdAt is when the hub was made", c + " vs " + created);
            check(Arrays.asList(p.getPartitionIds().stream().toArray()).equals(ids),
                    "getPartitionIds", ids);
            for (String id : ids) {
                checkPartition(p.getPartitionProperties(id), id, 0, created, "before sends");
            }

            Instant sent = Instant.now();
            sendBatch(p, new CreateBatchOptions(), List.of(event("hub-a"), event("hub-b"), event("hub-c")));
            ok("send a batch of 3 to the hub");
            sendBatch(p, new CreateBatchOptions().setPartitionId("1"), List.of(event("p1-a"), event("p1-b")));
            ok("send a batch of 2 to partition 1");
            sendBatch(p, new CreateBatchOptions().setPartitionKey("7"), List.of(event("k7-a"), event("k7-b")));
            ok("send a batch of 2 with partition key 7");

            // Read every partition from the start: where did each event land?
            Map<String, String> where = new HashMap<>();
            Map<String, EventData> byBody = new HashMap<>();
            Map<String, Long> counts = new HashMap<>();
            try (EventHubConsumerAsyncClient c2 = consumer(cs, HUB)) {
                for (String id : ids) {
                    long n = p.getPartitionProperties(id).getLastEnqueuedSequenceNumber() + 1;
                    counts.put(id, n);
                    if (n > 0) {
                        for (EventData e : receive(c2, id, EventPosition.earliest(), (int) n)) {
                            where.put(body(e), id);
                            byBody.put(body(e), e);
                        }
                    }
                }
            }
            check(where.size() == 7, "7 events read back from the 4 partitions", where);
            check("1".equals(where.get("p1-a")) && "1".equals(where.get("p1-b")),
                    "the partition-1 batch is on partition 1", where);
            check("3".equals(where.get("k7-a")) && "3".equals(where.get("k7-b")),
                    "key 7 is on partition 3 (lookup3)", where);
            EventData k = byBody.get("k7-a");
            check(k != null && "7".equals(k.getPartitionKey()), "the keyed event's partition key is 7",
                    k == null ? null : k.getPartitionKey());
            check(where.containsKey("hub-a") && where.containsKey("hub-b") && where.containsKey("hub-c"),
                    "the hub batch is on some partition", where);
            EventData h = byBody.get("hub-a");
            check(h != null && h.getPartitionKey() == null, "a hub event has no partition key",
                    h == null ? null : h.getPartitionKey());

            for (String id : ids) {
                checkPartition(p.getPartitionProperties(id), id, counts.get(id), sent, "after sends");
            }
            long total = counts.values().stream().mapToLong(Long::longValue).sum();
            check(total == 7, "the partitions' lastEnqueuedSequenceNumbers add up to 7 events", counts);
        }
    }

    @SuppressWarnings("deprecation") // fromOffset(long) and getOffset(): what older apps call
    static void positions(String cs) throws Exception {
        String part = "0";
        List<String> sent = new ArrayList<>();
        try (EventHubProducerClient p = producer(cs, RECV_HUB);
                EventHubConsumerAsyncClient c = consumer(cs, RECV_HUB)) {
            for (int i = 0; i < 5; i++) {
                EventData e = event("pos-" + i);
                e.getProperties().put("n", i);
                e.getProperties().put("s", "str-" + i);
                sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(e));
                sent.add("pos-" + i);
                if (i == 2) {
                    Thread.sleep(1500); // a gap for fromEnqueuedTime
                }
            }
            Instant afterSends = Instant.now();
            List<EventData> all = receive(c, part, EventPosition.earliest(), 5);
            check(bodies(all).equals(sent), "earliest(): the 5 bodies in order", bodies(all));
            for (int i = 0; i < 5; i++) {
                EventData e = all.get(i);
                Object n = e.getProperties().get("n");
                Object s = e.getProperties().get("s");
                if (!(n instanceof Integer ni && ni == i) || !("str-" + i).equals(s)) {
                    throw fail("event " + i + " properties: " + e.getProperties());
                }
                if (e.getSequenceNumber() == null || e.getSequenceNumber() != i
                        || !String.valueOf(i).equals(e.getOffsetString())
                        || e.getOffset() == null || e.getOffset() != i) {
                    throw fail("event " + i + ": sequence number " + e.getSequenceNumber()
                            + ", offset " + e.getOffsetString() + "/" + e.getOffset());
                }
                Instant t = e.getEnqueuedTime();
                if (t == null || t.isAfter(afterSends.plusSeconds(5)) || t.isBefore(afterSends.minusSeconds(60))
                        || (i > 0 && t.isBefore(all.get(i - 1).getEnqueuedTime()))) {
                    throw fail("event " + i + " enqueued time " + t);
                }
                if (e.getPartitionKey() != null) {
                    throw fail("event " + i + " has partition key " + e.getPartitionKey());
                }
            }
            ok("properties n (int) and s (string), sequence numbers 0..4, offsets \"0\"..\"4\", enqueued times");

            EventPosition byOffset = EventPosition.fromOffset(2);
            int first = byOffset.isInclusive() ? 2 : 3;
            List<EventData> got = receive(c, part, byOffset, 5 - first);
            check(bodies(got).equals(sent.subList(first, 5)),
                    "fromOffset(2) (inclusive " + byOffset.isInclusive() + ")", bodies(got));
            EventPosition byOffsetString = EventPosition.fromOffsetString("1");
            first = byOffsetString.isInclusive() ? 1 : 2;
            got = receive(c, part, byOffsetString, 5 - first);
            check(bodies(got).equals(sent.subList(first, 5)),
                    "fromOffsetString(\"1\") (inclusive " + byOffsetString.isInclusive() + ")", bodies(got));
            got = receive(c, part, EventPosition.fromSequenceNumber(2, true), 3);
            check(bodies(got).equals(sent.subList(2, 5)), "fromSequenceNumber(2, inclusive)", bodies(got));
            got = receive(c, part, EventPosition.fromSequenceNumber(2, false), 2);
            check(bodies(got).equals(sent.subList(3, 5)), "fromSequenceNumber(2, exclusive)", bodies(got));
            got = receive(c, part, EventPosition.fromSequenceNumber(2), 2);
            check(bodies(got).equals(sent.subList(3, 5)), "fromSequenceNumber(2) (exclusive by default)",
                    bodies(got));
            // Between the enqueued times of events 2 and 3 (1.5 s apart).
            Instant t2 = all.get(2).getEnqueuedTime();
            Instant t3 = all.get(3).getEnqueuedTime();
            Instant mid = t2.plus(Duration.between(t2, t3).dividedBy(2));
            got = receive(c, part, EventPosition.fromEnqueuedTime(mid), 2);
            check(bodies(got).equals(sent.subList(3, 5)), "fromEnqueuedTime(between events 2 and 3)",
                    bodies(got) + " from " + mid);

            // latest(): subscribe, let the link attach, then send.
            List<EventData> late = new CopyOnWriteArrayList<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            Disposable d = c.receiveFromPartition(part, EventPosition.latest())
                    .subscribe(pe -> late.add(pe.getData()), err::set);
            try {
                Thread.sleep(3000);
                EventData e = event("pos-late");
                e.getProperties().put("n", 99);
                sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(e));
                waitFor(WAIT.toMillis(), () -> !late.isEmpty() || err.get() != null);
                check(err.get() == null && late.size() == 1 && "pos-late".equals(body(late.get(0)))
                        && late.get(0).getSequenceNumber() == 5
                        && Integer.valueOf(99).equals(late.get(0).getProperties().get("n")),
                        "latest(): only the event sent after, sequence number 5",
                        err.get() != null ? err.get() : bodies(late));
            } finally {
                d.dispose();
            }
        }
    }

    /** A running receiveFromPartition: what it got and how it ended. */
    static final class Receiver {
        final List<EventData> events = new CopyOnWriteArrayList<>();
        final AtomicReference<Throwable> error = new AtomicReference<>();
        final Disposable sub;

        Receiver(EventHubConsumerAsyncClient c, String part, Long ownerLevel) {
            ReceiveOptions o = new ReceiveOptions();
            if (ownerLevel != null) {
                o.setOwnerLevel(ownerLevel);
            }
            sub = c.receiveFromPartition(part, EventPosition.latest(), o)
                    .subscribe(pe -> events.add(pe.getData()), error::set);
        }

        boolean got(String body) {
            return events.stream().anyMatch(e -> body.equals(body(e)));
        }
    }

    static void epochs(String cs) throws Exception {
        String part = "1";
        List<Receiver> all = new ArrayList<>();
        // One client each: the SDK shares one connection per client.
        List<EventHubConsumerAsyncClient> clients = new ArrayList<>();
        try (EventHubProducerClient p = producer(cs, RECV_HUB)) {
            for (int i = 0; i < 4; i++) {
                clients.add(consumer(cs, RECV_HUB));
            }
            Receiver zero = new Receiver(clients.get(0), part, 0L);
            all.add(zero);
            Thread.sleep(3000);
            sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(event("epoch-1")));
            check(waitFor(WAIT.toMillis(), () -> zero.got("epoch-1") || zero.error.get() != null)
                    && zero.error.get() == null, "an ownerLevel 0 receiver reads", zero.error.get());

            Receiver one = new Receiver(clients.get(1), part, 1L);
            all.add(one);
            check(waitFor(WAIT.toMillis(), () -> zero.error.get() != null),
                    "ownerLevel 1 disconnects the ownerLevel 0 receiver", zero.events.size() + " events");
            checkCondition(zero.error.get(), AmqpErrorCondition.LINK_STOLEN, "the ownerLevel 0 receiver");

            Thread.sleep(1000);
            sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(event("epoch-2")));
            check(waitFor(WAIT.toMillis(), () -> one.got("epoch-2") || one.error.get() != null)
                    && one.error.get() == null, "the ownerLevel 1 receiver reads", one.error.get());

            Receiver lower = new Receiver(clients.get(2), part, 0L);
            all.add(lower);
            check(waitFor(WAIT.toMillis(), () -> lower.error.get() != null),
                    "an ownerLevel 0 receiver is refused while ownerLevel 1 holds", lower.events.size() + " events");
            checkCondition(lower.error.get(), AmqpErrorCondition.LINK_STOLEN, "the ownerLevel 0 receiver");

            Receiver none = new Receiver(clients.get(3), part, null);
            all.add(none);
            check(waitFor(WAIT.toMillis(), () -> none.error.get() != null),
                    "a receiver without an owner level is refused while ownerLevel 1 holds",
                    none.events.size() + " events");
            checkCondition(none.error.get(), AmqpErrorCondition.LINK_STOLEN, "the receiver without an owner level");

            sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(event("epoch-3")));
            check(waitFor(WAIT.toMillis(), () -> one.got("epoch-3") || one.error.get() != null)
                    && one.error.get() == null, "the ownerLevel 1 receiver still reads", one.error.get());

            // An equal owner level takes the partition too (what event processors rely on).
            clients.add(consumer(cs, RECV_HUB));
            Receiver same = new Receiver(clients.get(4), part, 1L);
            all.add(same);
            check(waitFor(WAIT.toMillis(), () -> one.error.get() != null),
                    "a second ownerLevel 1 receiver disconnects the first", one.events.size() + " events");
            checkCondition(one.error.get(), AmqpErrorCondition.LINK_STOLEN, "the first ownerLevel 1 receiver");
            Thread.sleep(1000);
            sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(event("epoch-4")));
            check(waitFor(WAIT.toMillis(), () -> same.got("epoch-4") || same.error.get() != null)
                    && same.error.get() == null, "the second ownerLevel 1 receiver reads", same.error.get());
        } finally {
            for (Receiver r : all) {
                r.sub.dispose();
            }
            for (EventHubConsumerAsyncClient c : clients) {
                c.close();
            }
        }
    }

    /** Five receivers without an owner level share a partition; a sixth is refused. */
    static void receiverLimit(String cs) throws Exception {
        String part = "0";
        List<Receiver> five = new ArrayList<>();
        Receiver sixth = null;
        try (EventHubProducerClient p = producer(cs, RECV_HUB);
                EventHubConsumerAsyncClient c = consumer(cs, RECV_HUB);
                EventHubConsumerAsyncClient c6 = consumer(cs, RECV_HUB)) {
            for (int i = 0; i < 5; i++) {
                five.add(new Receiver(c, part, null));
            }
            Thread.sleep(3000);
            sendBatch(p, new CreateBatchOptions().setPartitionId(part), List.of(event("limit-1")));
            check(waitFor(WAIT.toMillis(), () -> five.stream().allMatch(r -> r.got("limit-1") || r.error.get() != null))
                    && five.stream().allMatch(r -> r.error.get() == null),
                    "5 receivers on one partition each read", five.stream().map(r -> r.error.get()).toList());
            Receiver r6 = new Receiver(c6, part, null);
            sixth = r6;
            check(waitFor(WAIT.toMillis(), () -> r6.error.get() != null), "a 6th receiver is refused",
                    r6.events.size() + " events");
            checkCondition(r6.error.get(), AmqpErrorCondition.RESOURCE_LIMIT_EXCEEDED, "the 6th receiver");
            check(five.stream().allMatch(r -> r.error.get() == null), "the 5 receivers keep their links",
                    five.stream().map(r -> r.error.get()).toList());
        } finally {
            for (Receiver r : five) {
                r.sub.dispose();
            }
            if (sixth != null) {
                sixth.sub.dispose();
            }
        }
    }

    static String withWrongKey(String cs) {
        // A key of the right shape that is not the policy's.
        return cs.replaceAll("SharedAccessKey=[^;]*", "SharedAccessKey=bm90LXRoZS1yaWdodC1rZXktbm90LXRoZS1yaWdodC1rZXk=");
    }

    /** Sends `body` to partition 2; what that threw, or null. */
    static Throwable producerFailure(String cs, String body) {
        try (EventHubProducerClient p = producer(cs, HUB)) {
            sendBatch(p, new CreateBatchOptions().setPartitionId("2"), List.of(event(body)));
            return null;
        } catch (Throwable e) {
            return e;
        }
    }

    static Throwable consumerFailure(String cs) {
        try (EventHubConsumerAsyncClient c = consumer(cs, HUB)) {
            List<PartitionEvent> got = c.receiveFromPartition("0", EventPosition.earliest()).take(1)
                    .collectList().block(WAIT);
            return fail("received " + got);
        } catch (Throwable e) {
            return e;
        }
    }

    static void authorization(String manage, String send, String listen) throws Exception {
        Throwable e;
        try (EventHubProducerClient p = producer(withWrongKey(manage), HUB)) {
            p.getEventHubProperties();
            e = fail("getEventHubProperties succeeded with a wrong key");
        } catch (Throwable t) {
            e = t;
        }
        checkCondition(e, AmqpErrorCondition.UNAUTHORIZED_ACCESS, "getEventHubProperties with a wrong key");
        checkCondition(producerFailure(withWrongKey(manage), "refused"), AmqpErrorCondition.UNAUTHORIZED_ACCESS,
                "a producer with a wrong key");
        checkCondition(consumerFailure(withWrongKey(manage)), AmqpErrorCondition.UNAUTHORIZED_ACCESS,
                "a consumer with a wrong key");
        // Each several times (compat.refusals, 5): the SDK treats a refused link as attached if the refusal's Attach
        // echoes the terminus, and then races the Detach that carries the error.
        int times = Integer.getInteger("compat.refusals", 5);
        for (int i = 1; i <= times; i++) {
            checkCondition(consumerFailure(send), AmqpErrorCondition.UNAUTHORIZED_ACCESS,
                    "a consumer with a Send-only policy (" + i + "/" + times + ")");
        }
        // The SDK sometimes reports a refused sender as IllegalStateException "Cannot
        // publish message when disposed" (it sends on the ReactorSender that the refusal's
        // Detach just disposed; seen against Azure too). Such an attempt is tried again with
        // a new client, at most 3 times; anything else fails the check, and partition 2 is
        // read below to prove nothing was written.
        int races = 0;
        for (int i = 1; i <= times; i++) {
            Throwable got = null;
            for (int attempt = 1; attempt <= 3; attempt++) {
                got = producerFailure(listen, "refused");
                if (!(got instanceof IllegalStateException)
                        || !String.valueOf(got.getMessage()).contains("when disposed")) {
                    break;
                }
                races++;
            }
            checkCondition(got, AmqpErrorCondition.UNAUTHORIZED_ACCESS,
                    "a producer with a Listen-only policy (" + i + "/" + times + ")");
        }
        System.out.println("  (the SDK's disposed-sender race: " + races + " of the Listen-only sends tried again)");

        // The right uses work with the same policies.
        Throwable sent = producerFailure(send, "by-send-policy");
        check(sent == null, "a producer with the Send policy sends", sent);
        long n;
        try (EventHubProducerClient p = producer(manage, HUB)) {
            n = p.getPartitionProperties("2").getLastEnqueuedSequenceNumber() + 1;
        }
        try (EventHubConsumerAsyncClient c = consumer(listen, HUB)) {
            List<String> got = bodies(receive(c, "2", EventPosition.earliest(), (int) n));
            check(got.contains("by-send-policy") && !got.contains("refused"),
                    "a consumer with the Listen policy reads partition 2: the Send policy's event, no refused one", got);
        }
    }

    static byte[] last(org.apache.kafka.common.header.Headers hs, String name) {
        org.apache.kafka.common.header.Header h = hs.lastHeader(name);
        return h == null ? null : h.value();
    }

    /** A binary property's bytes, as the SDK gives them (byte[] or proton-j's Binary). */
    static byte[] bytesOf(Object o) {
        if (o instanceof byte[] b) {
            return b;
        }
        if (o instanceof org.apache.qpid.proton.amqp.Binary b) {
            return Arrays.copyOfRange(b.getArray(), b.getArrayOffset(), b.getArrayOffset() + b.getLength());
        }
        return null;
    }

    static void kafkaAndAmqp(String cs) throws Exception {
        byte[] fromKafka = new byte[256];
        for (int i = 0; i < fromKafka.length; i++) {
            fromKafka[i] = (byte) i;
        }
        byte[] fromAmqp = new byte[300];
        for (int i = 0; i < fromAmqp.length; i++) {
            fromAmqp[i] = (byte) (255 - (i * 7) % 256);
        }
        Properties pp = kafkaProps();
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> kp = new KafkaProducer<>(pp)) {
            ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(KAFKA_HUB, 0,
                    "kafka-key".getBytes(StandardCharsets.UTF_8), fromKafka);
            rec.headers().add("h", "header-value".getBytes(StandardCharsets.UTF_8));
            RecordMetadata md = kp.send(rec).get();
            check(md.offset() == 0, "KafkaProducer wrote offset 0", md.offset());
        }
        try (EventHubProducerClient p = producer(cs, KAFKA_HUB);
                EventHubConsumerAsyncClient c = consumer(cs, KAFKA_HUB)) {
            EventData e = receive(c, "0", EventPosition.earliest(), 1).get(0);
            check(Arrays.equals(e.getBody(), fromKafka) && e.getSequenceNumber() == 0,
                    "the Kafka record's value read by the Event Hubs consumer, byte for byte",
                    e.getBody().length + " bytes, sequence number " + e.getSequenceNumber());
            byte[] h = bytesOf(e.getProperties().get("h"));
            check(h != null && new String(h, StandardCharsets.UTF_8).equals("header-value"),
                    "the Kafka header is a binary application property", e.getProperties());
            byte[] key = bytesOf(e.getSystemProperties().get("x-opt-kafka-key"));
            check(key != null && new String(key, StandardCharsets.UTF_8).equals("kafka-key"),
                    "the Kafka key is annotation x-opt-kafka-key", e.getSystemProperties());
            EventData out = new EventData(fromAmqp);
            out.getProperties().put("n", 5);
            out.getProperties().put("s", "str");
            sendBatch(p, new CreateBatchOptions().setPartitionKey("pk"), List.of(out));
            ok("the Event Hubs producer sent " + fromAmqp.length + " bytes");
        }
        Properties cp = kafkaProps();
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> kc = new KafkaConsumer<>(cp)) {
            TopicPartition tp = new TopicPartition(KAFKA_HUB, 0);
            kc.assign(List.of(tp));
            kc.seek(tp, 1);
            List<ConsumerRecord<byte[], byte[]>> recs = new ArrayList<>();
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (recs.isEmpty() && System.nanoTime() < deadline) {
                kc.poll(Duration.ofMillis(500)).forEach(recs::add);
            }
            check(recs.size() == 1 && Arrays.equals(recs.get(0).value(), fromAmqp) && recs.get(0).offset() == 1,
                    "the Event Hubs event read by a KafkaConsumer, byte for byte",
                    recs.isEmpty() ? "nothing" : recs.get(0).value().length + " bytes at offset " + recs.get(0).offset());
            org.apache.kafka.common.header.Headers hs = recs.get(0).headers();
            // Application properties as AMQP-encoded values: int 5 is 0x71 + 4 bytes or the
            // compact smallint 0x54 0x05 (proton-j writes that); "str" is 0xa1 + length.
            byte[] n = last(hs, "n");
            check(Arrays.equals(n, new byte[] {0x71, 0, 0, 0, 5}) || Arrays.equals(n, new byte[] {0x54, 5}),
                    "header n is the AMQP int 5", Arrays.toString(n));
            check(Arrays.equals(last(hs, "s"), new byte[] {(byte) 0xa1, 3, 's', 't', 'r'}),
                    "header s is the AMQP string \"str\"", Arrays.toString(last(hs, "s")));
            check(Arrays.equals(last(hs, "x-opt-partition-key"), new byte[] {(byte) 0xa1, 2, 'p', 'k'}),
                    "header x-opt-partition-key is the AMQP string \"pk\"",
                    Arrays.toString(last(hs, "x-opt-partition-key")));
        }
    }
}
