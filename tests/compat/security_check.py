"""TLS and SASL with confluent-kafka, kafka-python and kcat against `runnel serve`.

One broker with PLAINTEXT, SSL, MTLS (SSL with ssl.client.auth=required),
SASL_PLAINTEXT and SASL_SSL listeners. Certificates are made here with `cryptography`:
a CA, the broker's certificate for 127.0.0.1, a client certificate for CN=alice. Each
client produces to and reads back its own topic through every listener and mechanism
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), and is refused with a wrong password, with no
client certificate on MTLS, and without trusting the CA.

OAUTHBEARER: the OAUTH listener checks RS256 tokens signed here against a JWKS file
(confluent-kafka's oauth_cb, kafka-python's token provider); expired and wrong-audience
tokens are refused. OAUTH_DEV takes unsecured (alg none) tokens (librdkafka's
enable.sasl.oauthbearer.unsecure.jwt in confluent-kafka and kcat, the Java client's
OAuthBearerLoginModule). Both have connections.max.reauth.ms=3000: a confluent-kafka
producer and the Java client keep producing across several session lifetimes, and the
broker logs their re-authentications.
"""

import base64
import datetime
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runnel_broker import Broker, Checks

C = Checks("security")
HERE = os.path.dirname(os.path.abspath(__file__))
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-secret";')
SCRAM_USERS = ("SCRAM-SHA-256=[name=bob,password=bob-secret];"
               "SCRAM-SHA-512=[name=carol,password=carol-secret]")
USERS = {"PLAIN": ("alice", "alice-secret"), "SCRAM-SHA-256": ("bob", "bob-secret"),
         "SCRAM-SHA-512": ("carol", "carol-secret")}


def name(cn, org=None):
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def cert(subject, key, issuer, issuer_key, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def make_pki(d):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("Runnel compat CA"), ca_key, name("Runnel compat CA"), ca_key, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = cert(name("broker"), broker_key, ca.subject, ca_key, server=True)
    alice_key = ec.generate_private_key(ec.SECP256R1())
    alice = cert(name("alice", "Runnel"), alice_key, ca.subject, ca_key)
    paths = {k: os.path.join(d, k) for k in ["ca.pem", "broker.pem", "alice.crt", "alice.key"]}
    open(paths["ca.pem"], "wb").write(pem_cert(ca))
    open(paths["broker.pem"], "wb").write(pem_key(broker_key) + pem_cert(broker) + pem_cert(ca))
    open(paths["alice.crt"], "wb").write(pem_cert(alice))
    open(paths["alice.key"], "wb").write(pem_key(alice_key))
    return paths


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Idp:
    """An RSA key, its JWKS file, and RS256 tokens it signs (no JWT library needed)."""
    ISSUER = "https://idp.compat.test"
    AUDIENCE = "runnel"

    def __init__(self, d):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        n = self.key.public_key().public_numbers()
        as_b64 = lambda i: b64u(i.to_bytes((i.bit_length() + 7) // 8, "big"))  # noqa: E731
        self.jwks = os.path.join(d, "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump({"keys": [{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
                                 "n": as_b64(n.n), "e": as_b64(n.e)}]}, f)

    def token(self, sub="alice", secs=600, **override):
        now = int(time.time())
        claims = {"sub": sub, "iss": self.ISSUER, "aud": self.AUDIENCE, "iat": now,
                  "exp": now + secs, **override}
        head = b64u(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        body = b64u(json.dumps(claims).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64u(sig)}", claims["exp"]


def oauth_conf(idp, **claims):
    def cb(_config):
        token, exp = idp.token(**claims)
        # librdkafka will not take a token it thinks expired; the broker judges the JWT.
        return token, max(float(exp), time.time() + 60), claims.get("sub", "alice"), {}
    return {"security.protocol": "sasl_plaintext", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": cb}


def reauthentications(b):
    with open(b.stderr_path, errors="replace") as f:
        log = f.read()
    return log.count("re-authenticated"), log.count("outlived its lifetime")


def confluent_keeps_producing(addr, conf, topic, seconds=8):
    """One record every 200 ms for `seconds`: each must be delivered."""
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": addr, "error_cb": lambda e: errors.append(str(e)),
                  "linger.ms": 0, **conf})
    delivered = []
    n = int(seconds / 0.2)
    for i in range(n):
        p.produce(topic, f"{topic}-{i}".encode(), on_delivery=lambda err, m: delivered.append(err))
        p.flush(10)
        time.sleep(0.2)
    C.check(len(delivered) == n and all(e is None for e in delivered),
            f"confluent-kafka kept producing to {topic} for {seconds} s",
            f"{len(delivered)} of {n}, {delivered[:3]} {errors[:3]}")


def confluent_round_trip(addr, conf, topic, n=200):
    from confluent_kafka import Consumer, Producer
    errors = []
    p = Producer({"bootstrap.servers": addr, "error_cb": lambda e: errors.append(str(e)), **conf})
    delivered = []
    for i in range(n):
        p.produce(topic, f"{topic}-{i}".encode(), on_delivery=lambda err, m: delivered.append(err))
    p.flush(30)
    C.check(len(delivered) == n and all(e is None for e in delivered),
            f"confluent-kafka produced {topic}", f"{delivered[:3]} {errors[:3]}")
    c = Consumer({"bootstrap.servers": addr, "group.id": f"{topic}-g",
                  "auto.offset.reset": "earliest", **conf})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    c.close()
    C.check(got == [f"{topic}-{i}" for i in range(n)], f"confluent-kafka read back {topic}",
            f"got {len(got)}")


def confluent_refused(addr, conf, what):
    from confluent_kafka.admin import AdminClient
    errors = []
    a = AdminClient({"bootstrap.servers": addr, "error_cb": lambda e: errors.append(str(e)),
                     **conf})
    try:
        a.list_topics(timeout=6)
        ok = True
    except Exception:  # noqa: BLE001: any failure to get metadata is the refusal
        ok = False
    C.check(not ok, f"confluent-kafka refused: {what}", f"errors {errors[:3]}")


def confluent_oauth_refused(addr, conf, what):
    from confluent_kafka import Consumer
    errors = []
    c = Consumer({"bootstrap.servers": addr, "group.id": "refused",
                  "error_cb": lambda e: errors.append(str(e)), **conf})
    c.poll(0.5)
    try:
        c.list_topics(timeout=6)
        ok = True
    except Exception:  # noqa: BLE001: any failure to get metadata is the refusal
        ok = False
    c.poll(0.5)
    c.close()
    C.check(not ok, f"confluent-kafka refused: {what}", f"errors {errors[:3]}")


def kafka_python_oauth_round_trip(addr, idp, topic):
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return idp.token()[0]

    kafka_python_round_trip(addr, {"security_protocol": "SASL_PLAINTEXT",
                                   "sasl_mechanism": "OAUTHBEARER",
                                   "sasl_oauth_token_provider": Provider()}, topic)


def kafka_python_round_trip(addr, conf, topic, n=100):
    from kafka import KafkaConsumer, KafkaProducer
    p = KafkaProducer(bootstrap_servers=addr, **conf)
    futures = [p.send(topic, f"{topic}-{i}".encode()) for i in range(n)]
    for f in futures:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=addr, group_id=f"{topic}-g",
                      auto_offset_reset="earliest", consumer_timeout_ms=20000, **conf)
    got = []
    for m in c:
        got.append(m.value.decode())
        if len(got) == n:
            break
    c.close()
    C.check(got == [f"{topic}-{i}" for i in range(n)], f"kafka-python read back {topic}",
            f"got {len(got)}")


def kafka_python_refused(addr, conf, what):
    from kafka import KafkaAdminClient
    try:
        a = KafkaAdminClient(bootstrap_servers=addr, request_timeout_ms=6000, **conf)
        a.list_topics()
        a.close()
        ok = True
    except Exception:  # noqa: BLE001
        ok = False
    C.check(not ok, f"kafka-python refused: {what}")


def kcat(addr, args, topic):
    produced = subprocess.run(["kcat", "-b", addr, *args, "-P", "-t", topic],
                              input=b"a\nb\nc\n", capture_output=True, timeout=60)
    C.check(produced.returncode == 0, f"kcat produced {topic}", produced.stderr.decode())
    read = subprocess.run(["kcat", "-b", addr, *args, "-C", "-t", topic, "-o", "beginning",
                           "-c", "3", "-e"], capture_output=True, timeout=60)
    C.check(read.stdout.decode().split() == ["a", "b", "c"], f"kcat read back {topic}",
            read.stderr.decode())


def main():
    d = tempfile.mkdtemp(prefix="runnel-compat-pki-")
    pki = make_pki(d)
    idp = Idp(d)
    args = []
    for k, v in [
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0,"
                      "SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,"
                      "OAUTH://127.0.0.1:0,OAUTH_DEV://127.0.0.1:0"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,"
                                           "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                                           "OAUTH:SASL_PLAINTEXT,OAUTH_DEV:SASL_PLAINTEXT"),
        ("listener.name.oauth.sasl.enabled.mechanisms", "OAUTHBEARER"),
        ("listener.name.oauth.sasl.oauthbearer.jwks.endpoint.url", f"file://{idp.jwks}"),
        ("listener.name.oauth.sasl.oauthbearer.expected.issuer", Idp.ISSUER),
        ("listener.name.oauth.sasl.oauthbearer.expected.audience", Idp.AUDIENCE),
        ("listener.name.oauth.connections.max.reauth.ms", "3000"),
        ("listener.name.oauth_dev.sasl.enabled.mechanisms", "OAUTHBEARER"),
        ("listener.name.oauth_dev.oauthbearer.sasl.jaas.config",
         "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
         'unsecuredLoginStringClaim_sub="admin";'),
        ("listener.name.oauth_dev.connections.max.reauth.ms", "3000"),
        ("ssl.keystore.location", pki["broker.pem"]),
        ("listener.name.mtls.ssl.client.auth", "required"),
        ("listener.name.mtls.ssl.truststore.location", pki["ca.pem"]),
        ("plain.sasl.jaas.config", PLAIN_JAAS),
        ("scram.bootstrap.users", SCRAM_USERS),
    ]:
        args += ["--set", f"{k}={v}"]
    with Broker(args) as b:
        L = b.listeners
        C.check(set(L) == {"PLAINTEXT", "SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL", "OAUTH",
                           "OAUTH_DEV"},
                "the broker printed every listener", str(L))
        ca = pki["ca.pem"]
        ssl_c = {"security.protocol": "ssl", "ssl.ca.location": ca}
        mtls_c = {**ssl_c, "ssl.certificate.location": pki["alice.crt"],
                  "ssl.key.location": pki["alice.key"]}
        confluent_round_trip(L["SSL"], ssl_c, "ck-ssl")
        confluent_round_trip(L["MTLS"], mtls_c, "ck-mtls")
        confluent_refused(L["MTLS"], ssl_c, "MTLS without a client certificate")
        confluent_refused(L["SSL"], {"security.protocol": "ssl"}, "SSL without the CA")
        for mech, (user, pw) in USERS.items():
            for proto, listener in [("sasl_plaintext", "SASL_PLAINTEXT"), ("sasl_ssl", "SASL_SSL")]:
                conf = {"security.protocol": proto, "sasl.mechanism": mech,
                        "sasl.username": user, "sasl.password": pw}
                if proto == "sasl_ssl":
                    conf["ssl.ca.location"] = ca
                confluent_round_trip(L[listener], conf, f"ck-{proto}-{mech.lower()}")
            confluent_refused(L["SASL_PLAINTEXT"], {"security.protocol": "sasl_plaintext",
                                                     "sasl.mechanism": mech, "sasl.username": user,
                                                     "sasl.password": "wrong"},
                              f"{mech} with a wrong password")

        confluent_round_trip(L["OAUTH"], oauth_conf(idp), "ck-oauth-signed")
        confluent_oauth_refused(L["OAUTH"], oauth_conf(idp, secs=-120), "an expired token")
        confluent_oauth_refused(L["OAUTH"], oauth_conf(idp, aud="someone-else"),
                                "a token for another audience")
        unsecured = {"security.protocol": "sasl_plaintext", "sasl.mechanism": "OAUTHBEARER",
                     "enable.sasl.oauthbearer.unsecure.jwt": "true",
                     "sasl.oauthbearer.config": "principal=dev-user"}
        confluent_round_trip(L["OAUTH_DEV"], unsecured, "ck-oauth-unsecured")
        confluent_oauth_refused(L["OAUTH"], unsecured, "an unsecured token where signed ones are due")
        before, outlived_before = reauthentications(b)
        confluent_keeps_producing(L["OAUTH"], oauth_conf(idp), "ck-oauth-reauth")
        after, outlived = reauthentications(b)
        C.check(after - before >= 2 and outlived == outlived_before,
                "confluent-kafka re-authenticated on its connections (connections.max.reauth.ms=3000)",
                f"{after - before} re-authentications, {outlived - outlived_before} sessions closed "
                "for expiry")

        kp_ssl = {"security_protocol": "SSL", "ssl_cafile": ca}
        kafka_python_round_trip(L["SSL"], kp_ssl, "kp-ssl")
        kafka_python_round_trip(L["MTLS"], {**kp_ssl, "ssl_certfile": pki["alice.crt"],
                                             "ssl_keyfile": pki["alice.key"]}, "kp-mtls")
        for mech, (user, pw) in USERS.items():
            for proto, listener in [("SASL_PLAINTEXT", "SASL_PLAINTEXT"), ("SASL_SSL", "SASL_SSL")]:
                conf = {"security_protocol": proto, "sasl_mechanism": mech,
                        "sasl_plain_username": user, "sasl_plain_password": pw}
                if proto == "SASL_SSL":
                    conf["ssl_cafile"] = ca
                kafka_python_round_trip(L[listener], conf, f"kp-{proto.lower()}-{mech.lower()}")
        kafka_python_refused(L["SASL_PLAINTEXT"], {"security_protocol": "SASL_PLAINTEXT",
                                                    "sasl_mechanism": "SCRAM-SHA-256",
                                                    "sasl_plain_username": "bob",
                                                    "sasl_plain_password": "wrong"},
                             "SCRAM-SHA-256 with a wrong password")
        kafka_python_oauth_round_trip(L["OAUTH"], idp, "kp-oauth-signed")

        before, outlived_before = reauthentications(b)
        java = subprocess.run(["bash", os.path.join(HERE, "java", "run.sh"), "security",
                               L["SSL"], L["SASL_PLAINTEXT"], L["SASL_SSL"], ca, L["OAUTH_DEV"]],
                              timeout=900)
        C.check(java.returncode == 0, "the Java client's security checks (output above)")
        after, outlived = reauthentications(b)
        C.check(after - before >= 2 and outlived == outlived_before,
                "the Java client re-authenticated on its connections",
                f"{after - before} re-authentications, {outlived - outlived_before} sessions closed "
                "for expiry")

        kcat(L["SSL"], ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={ca}"], "kc-ssl")
        kcat(L["SASL_SSL"], ["-X", "security.protocol=sasl_ssl", "-X", f"ssl.ca.location={ca}",
                             "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=carol",
                             "-X", "sasl.password=carol-secret"], "kc-sasl-ssl")
        kcat(L["SASL_PLAINTEXT"], ["-X", "security.protocol=sasl_plaintext",
                                   "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice",
                                   "-X", "sasl.password=alice-secret"], "kc-sasl-plain")
        kcat(L["OAUTH_DEV"], ["-X", "security.protocol=sasl_plaintext",
                              "-X", "sasl.mechanism=OAUTHBEARER",
                              "-X", "enable.sasl.oauthbearer.unsecure.jwt=true",
                              "-X", "sasl.oauthbearer.config=principal=kcat-user"], "kc-oauth-unsecured")
    print(f"security: {C.n} checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
