package runnel.compat;

import static runnel.compat.Checks.check;
import static runnel.compat.Checks.failure;
import static runnel.compat.Checks.get;
import static runnel.compat.Checks.ok;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * TLS and SASL with the Java client, configured as Kafka documents it (PEM trust store,
 * JAAS lines), against a broker with SSL, SASL_PLAINTEXT and SASL_SSL listeners, and
 * SCRAM credentials managed with the Admin API (KIP-554).
 *
 * <p>Arguments: SSL_ADDR SASL_PLAINTEXT_ADDR SASL_SSL_ADDR CA_PEM [OAUTH_DEV_ADDR]. The
 * broker has the PLAIN user alice/alice-secret and the SCRAM-SHA-256 user bob/bob-secret.
 * OAUTH_DEV_ADDR is a listener taking unsecured OAUTHBEARER tokens, with
 * connections.max.reauth.ms set: the producer keeps producing across several session
 * lifetimes, re-authenticating on its connection (KIP-368).
 */
public final class SecurityCheck {
    private SecurityCheck() {}

    static Properties ssl(String bootstrap, String caPem) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
        p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, caPem);
        return p;
    }

    static Properties sasl(String bootstrap, String protocol, String mechanism, String user,
            String password, String caPem) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
        p.put(SaslConfigs.SASL_MECHANISM, mechanism);
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        p.put(SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + user
                + "\" password=\"" + password + "\";");
        if (protocol.equals("SASL_SSL")) {
            p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
            p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, caPem);
        }
        return p;
    }

    static void roundTrip(Properties security, String topic) throws Exception {
        Properties pp = new Properties();
        pp.putAll(security);
        pp.put("key.serializer", ByteArraySerializer.class.getName());
        pp.put("value.serializer", ByteArraySerializer.class.getName());
        List<String> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                String v = topic + "-" + i;
                sent.add(v);
                acks.add(producer.send(new ProducerRecord<>(topic, v.getBytes(StandardCharsets.UTF_8))));
            }
            for (Future<RecordMetadata> f : acks) {
                get(f, "produce to " + topic);
            }
        }
        Properties cp = new Properties();
        cp.putAll(security);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, topic + "-g");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (got.size() < sent.size() && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    got.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
        }
        check(got.equals(sent), "produced and read back " + topic, got.size() + " records");
    }

    static Properties unsecuredOAuth(String bootstrap, String sub) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        p.put(SaslConfigs.SASL_MECHANISM, "OAUTHBEARER");
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                        + "unsecuredLoginStringClaim_sub=\"" + sub + "\";");
        return p;
    }

    /** One record every 250 ms for 8 s through one producer: every one is acknowledged. */
    static void keepProducing(Properties security, String topic) throws Exception {
        Properties pp = new Properties();
        pp.putAll(security);
        pp.put("key.serializer", ByteArraySerializer.class.getName());
        pp.put("value.serializer", ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < 32; i++) {
                get(producer.send(new ProducerRecord<>(topic, (topic + "-" + i).getBytes(StandardCharsets.UTF_8))),
                        "produce record " + i + " to " + topic);
                Thread.sleep(250);
            }
        }
        ok("kept producing to " + topic + " for 8 s");
    }

    public static void main(String[] args) {
        if (args.length != 4 && args.length != 5) {
            System.err.println(
                    "usage: SecurityCheck SSL_ADDR SASL_PLAINTEXT_ADDR SASL_SSL_ADDR CA_PEM [OAUTH_DEV_ADDR]");
            System.exit(2);
        }
        String sslAddr = args[0], saslPlain = args[1], saslSsl = args[2], ca = args[3];
        String oauthDev = args.length == 5 ? args[4] : null;
        Checks.main("java-security", () -> {
            if (oauthDev != null) {
                Checks.section("SASL/OAUTHBEARER with the unsecured login module", () -> roundTrip(
                        unsecuredOAuth(oauthDev, "java-user"), "java-oauth"));
                Checks.section("re-authentication (KIP-368) while producing", () -> keepProducing(
                        unsecuredOAuth(oauthDev, "java-user"), "java-oauth-reauth"));
            }
            Checks.section("SSL with a PEM trust store", () -> roundTrip(ssl(sslAddr, ca), "java-ssl"));
            Checks.section("SASL/PLAIN over SASL_PLAINTEXT", () -> roundTrip(
                    sasl(saslPlain, "SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret", ca), "java-plain"));
            Checks.section("SASL/SCRAM-SHA-256 over SASL_SSL", () -> roundTrip(
                    sasl(saslSsl, "SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", ca), "java-scram"));
            Checks.section("a wrong password is SaslAuthenticationException", () -> {
                Properties p = sasl(saslPlain, "SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "wrong", ca);
                try (Admin admin = Admin.create(p)) {
                    Throwable t = failure(admin.listTopics().names(), "listTopics with a wrong password");
                    check(t instanceof SaslAuthenticationException, "refused with SaslAuthenticationException",
                            t);
                }
            });
            Checks.section("SCRAM credentials through the Admin API (KIP-554)", () -> {
                Properties p = sasl(saslSsl, "SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", ca);
                try (Admin admin = Admin.create(p)) {
                    List<UserScramCredentialAlteration> add = List.of(
                            new UserScramCredentialUpsertion("dave",
                                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), "dave-secret"));
                    get(admin.alterUserScramCredentials(add).all(), "add dave");
                    Map<String, UserScramCredentialsDescription> described =
                            get(admin.describeUserScramCredentials(List.of("dave")).all(), "describe dave");
                    List<ScramCredentialInfo> infos = described.get("dave").credentialInfos();
                    check(infos.size() == 1 && infos.get(0).mechanism() == ScramMechanism.SCRAM_SHA_512
                            && infos.get(0).iterations() == 8192, "dave has SCRAM-SHA-512 with 8192 iterations",
                            infos);
                    Map<String, UserScramCredentialsDescription> all =
                            get(admin.describeUserScramCredentials().all(), "describe all users");
                    check(all.keySet().containsAll(List.of("bob", "dave")), "every user is listed", all.keySet());
                    roundTrip(sasl(saslSsl, "SASL_SSL", "SCRAM-SHA-512", "dave", "dave-secret", ca),
                            "java-dave");
                    // all() passes over RESOURCE_NOT_FOUND; description(user) reports it.
                    Throwable missing = failure(
                            admin.describeUserScramCredentials(List.of("nobody")).description("nobody"),
                            "describe a user without credentials");
                    check(missing instanceof ResourceNotFoundException, "nobody is ResourceNotFoundException",
                            missing);
                    get(admin.alterUserScramCredentials(List.of(
                            new UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512))).all(),
                            "delete dave");
                    Properties gone = sasl(saslSsl, "SASL_SSL", "SCRAM-SHA-512", "dave", "dave-secret", ca);
                    try (Admin asDave = Admin.create(gone)) {
                        Throwable t = failure(asDave.listTopics().names(), "login as deleted dave");
                        check(t instanceof SaslAuthenticationException, "deleted dave cannot log in", t);
                    }
                }
            });
            ok("java security checks ran");
        });
    }
}
