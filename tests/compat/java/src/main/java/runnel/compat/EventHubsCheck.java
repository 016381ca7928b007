package runnel.compat;

import static runnel.compat.Checks.check;
import static runnel.compat.Checks.failure;
import static runnel.compat.Checks.get;
import static runnel.compat.Checks.ok;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Event Hubs connection strings and ACLs with the Java client. The connection strings are
 * given as Microsoft's Event Hubs quickstart for Java gives them: SASL_SSL, PLAIN,
 * {@code username="$ConnectionString"} and the connection string as the password.
 *
 * <p>Arguments: eventhubs SASL_SSL_ADDR CA_PEM MANAGE_CS SEND_CS LISTEN_CS, where SEND_CS
 * is a Send policy of hub "java-eh"; or acls SASL_PLAINTEXT_ADDR for a broker with the
 * StandardAuthorizer, super user admin/admin-secret and user alice/alice-secret.
 */
public final class EventHubsCheck {
    private EventHubsCheck() {}

    static Properties eventHubs(String bootstrap, String ca, String connectionString) {
        Properties p = SecurityCheck.sasl(bootstrap, "SASL_SSL", "PLAIN", "$ConnectionString",
                connectionString, ca);
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "20000");
        p.put("max.block.ms", "15000");
        p.put("delivery.timeout.ms", "20000");
        return p;
    }

    static Throwable produceFailure(Properties security, String topic) throws Exception {
        Properties pp = new Properties();
        pp.putAll(security);
        pp.put("key.serializer", ByteArraySerializer.class.getName());
        pp.put("value.serializer", ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            producer.send(new ProducerRecord<>(topic, "x".getBytes(StandardCharsets.UTF_8)))
                    .get(30, java.util.concurrent.TimeUnit.SECONDS);
            return null;
        } catch (java.util.concurrent.ExecutionException e) {
            return e.getCause();
        } catch (Exception e) {
            return e;
        }
    }

    static Throwable consumeFailure(Properties security, String topic) {
        Properties cp = new Properties();
        cp.putAll(security);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, "$Default");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.assign(List.of(new TopicPartition(topic, 0)));
            consumer.seekToBeginning(List.of(new TopicPartition(topic, 0)));
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(500));
            }
            return null;
        } catch (Exception e) {
            return e;
        }
    }

    static boolean isTopicAuthorization(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof TopicAuthorizationException) {
                return true;
            }
        }
        return false;
    }

    /** A refused write: the topic, or (for the idempotent producer's id) the cluster. */
    static boolean isWriteRefused(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof TopicAuthorizationException
                    || c instanceof org.apache.kafka.common.errors.ClusterAuthorizationException) {
                return true;
            }
        }
        return false;
    }

    static void eventHubs(String addr, String ca, String manage, String send, String listen) {
        Checks.main("java-event-hubs", () -> {
            Checks.section("Manage: create a hub, produce and consume", () -> {
                try (Admin admin = Admin.create(eventHubs(addr, ca, manage))) {
                    get(admin.createTopics(List.of(new NewTopic("java-eh", 1, (short) 1))).all(),
                            "create java-eh");
                }
                SecurityCheck.roundTrip(eventHubs(addr, ca, manage), "java-eh");
            });
            Checks.section("Send: produce to its hub only, never consume", () -> {
                Properties p = eventHubs(addr, ca, send);
                check(produceFailure(p, "java-eh") == null, "Send produces to java-eh", "");
                Throwable other = produceFailure(p, "java-eh-other");
                check(isTopicAuthorization(other), "Send cannot produce to another hub", other);
                Throwable read = consumeFailure(p, "java-eh");
                check(isTopicAuthorization(read), "Send cannot consume", read);
            });
            Checks.section("Listen: consume, never produce", () -> {
                Properties p = eventHubs(addr, ca, listen);
                check(consumeFailure(p, "java-eh") == null, "Listen consumes java-eh", "");
                Throwable write = produceFailure(p, "java-eh");
                check(isWriteRefused(write), "Listen cannot produce", write);
            });
            Checks.section("a wrong key is SaslAuthenticationException", () -> {
                String wrong = manage.replaceAll("SharedAccessKey=[^;]*",
                        "SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
                try (Admin admin = Admin.create(eventHubs(addr, ca, wrong))) {
                    Throwable t = failure(admin.listTopics().names(), "listTopics with a wrong key");
                    check(t instanceof SaslAuthenticationException, "refused with SaslAuthenticationException", t);
                }
            });
            ok("java event hubs checks ran");
        });
    }

    static void acls(String addr) {
        Checks.main("java-acls", () -> {
            Properties admin = SecurityCheck.sasl(addr, "SASL_PLAINTEXT", "PLAIN", "admin", "admin-secret", "");
            Properties alice = SecurityCheck.sasl(addr, "SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret", "");
            alice.put("max.block.ms", "15000");
            alice.put("delivery.timeout.ms", "20000");
            alice.put("request.timeout.ms", "15000");
            ResourcePattern topic = new ResourcePattern(ResourceType.TOPIC, "java-acl", PatternType.LITERAL);
            AclBinding write = new AclBinding(topic,
                    new AccessControlEntry("User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW));
            AclBinding read = new AclBinding(new ResourcePattern(ResourceType.TOPIC, "java-", PatternType.PREFIXED),
                    new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
            AclBinding group = new AclBinding(new ResourcePattern(ResourceType.GROUP, "*", PatternType.LITERAL),
                    new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
            Checks.section("createAcls, describeAcls and deleteAcls (KIP-140)", () -> {
                try (Admin a = Admin.create(admin)) {
                    get(a.createTopics(List.of(new NewTopic("java-acl", 1, (short) 1))).all(), "create java-acl");
                    Throwable before = produceFailure(alice, "java-acl");
                    check(isWriteRefused(before), "alice may not produce before the ACL", before);
                    get(a.createAcls(List.of(write, read, group)).all(), "create three ACLs");
                    Collection<AclBinding> listed = get(a.describeAcls(AclBindingFilter.ANY).values(),
                            "describe all ACLs");
                    // (The Python check before this one left its own ACLs.)
                    check(listed.containsAll(List.of(write, read, group)), "describeAcls lists the three",
                            listed);
                    AclBindingFilter matching = new AclBindingFilter(
                            new ResourcePatternFilter(ResourceType.TOPIC, "java-acl", PatternType.MATCH),
                            AccessControlEntryFilter.ANY);
                    Collection<AclBinding> match = get(a.describeAcls(matching).values(), "describe MATCH");
                    check(match.size() == 2, "MATCH finds the literal and the prefixed ACL", match);
                    // alice produces with WRITE and reads back with READ (prefixed) and the group.
                    SecurityCheck.roundTrip(alice, "java-acl");
                    Collection<AclBinding> deleted = get(a.deleteAcls(List.of(write.toFilter())).all(),
                            "delete the WRITE ACL");
                    check(deleted.size() == 1, "deleteAcls removed one", deleted);
                    Throwable after = produceFailure(alice, "java-acl");
                    check(isWriteRefused(after), "alice may not produce after the delete", after);
                }
                try (Admin a = Admin.create(alice)) {
                    Throwable t = failure(a.createAcls(List.of(write)).all(), "alice creates an ACL");
                    check(t instanceof org.apache.kafka.common.errors.ClusterAuthorizationException,
                            "alice may not create ACLs", t);
                }
            });
            ok("java acl checks ran");
        });
    }

    public static void main(String[] args) {
        if (args.length == 6 && args[0].equals("eventhubs")) {
            eventHubs(args[1], args[2], args[3], args[4], args[5]);
        } else if (args.length == 2 && args[0].equals("acls")) {
            acls(args[1]);
        } else {
            System.err.println("usage: EventHubsCheck eventhubs ADDR CA MANAGE SEND LISTEN | acls ADDR");
            System.exit(2);
        }
    }
}
