"""Event Hubs connection strings and ACLs with confluent-kafka and the Java client.

Broker 1 has a SASL_SSL listener and shared access policies made with `runnel sas
policy`. Clients are configured as Microsoft's Event Hubs quickstarts configure them
(SASL_SSL, PLAIN, username `$ConnectionString`, the connection string as the password).
Each right is enforced, EntityPath limits a login to one hub, and a wrong key is refused.

Broker 2 has Kafka's StandardAuthorizer: ACLs are made, listed and deleted with
confluent-kafka's AdminClient and the Java Admin, and a producer is refused until its
ACL exists.
"""

import os
import subprocess
import sys
import time

from runnel_broker import Broker, Checks, runnel_bin
from security_check import make_pki

C = Checks("event-hubs")
HERE = os.path.dirname(os.path.abspath(__file__))
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_admin="admin-secret" user_alice="alice-secret";')


def sas(data_dir, *args):
    out = subprocess.run([runnel_bin(), "sas", "policy", *args, "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=30)
    C.check(out.returncode == 0, f"runnel sas policy {args[0]} {args[1]}", out.stderr)
    return out.stdout


def primary(out):
    return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("primary:"))


def eh_conf(addr, ca, cs):
    # As Microsoft's quickstart for confluent-kafka-python, plus the test CA.
    return {"bootstrap.servers": addr, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString",
            "sasl.password": cs, "ssl.ca.location": ca, "socket.timeout.ms": 10000,
            "message.timeout.ms": 10000}


def produce(conf, topic, values):
    from confluent_kafka import Producer
    p = Producer(conf)
    results = []
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, m: results.append(err))
    p.flush(30)
    return results


def consume(conf, topic, n, group="$Default"):
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, err = [], None
    deadline = time.time() + 30
    while len(got) < n and time.time() < deadline and err is None:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() is None:
            got.append(m.value().decode())
        elif m.error().code() != KafkaError._PARTITION_EOF:
            err = m.error()
    c.close()
    return got, err


def refused_login(conf):
    from confluent_kafka.admin import AdminClient
    try:
        AdminClient(conf).list_topics(timeout=6)
        return False
    except Exception:  # noqa: BLE001: any failure to get metadata is the refusal
        return True


def event_hubs(pki):
    ca = pki["ca.pem"]
    args = ["--set", "listeners=SASL_SSL://127.0.0.1:0",
            "--set", f"ssl.keystore.location={pki['broker.pem']}",
            "--set", "sasl.enabled.mechanisms=PLAIN"]
    with Broker(args) as b:
        addr = b.listeners["SASL_SSL"]
        data = os.path.join(b.dir, "data")
        manage = primary(sas(data, "add", "RootManageSharedAccessKey", "--rights", "Manage"))
        send = primary(sas(data, "add", "send", "--rights", "Send", "--hub", "py-eh"))
        listen = primary(sas(data, "add", "listen", "--rights", "Listen"))
        java_send = primary(sas(data, "add", "send", "--rights", "Send", "--hub", "java-eh"))
        # The broker reloads the store within a few seconds.
        deadline = time.time() + 20
        while refused_login(eh_conf(addr, ca, manage)) and time.time() < deadline:
            time.sleep(0.5)
        C.check(not refused_login(eh_conf(addr, ca, manage)), "Manage logs in")

        from confluent_kafka.admin import AdminClient, NewTopic
        a = AdminClient(eh_conf(addr, ca, manage))
        for t in ["py-eh", "py-eh-other"]:
            a.create_topics([NewTopic(t, 1, 1)])[t].result(20)
        C.check(produce(eh_conf(addr, ca, manage), "py-eh", ["m-1"]) == [None],
                "Manage produces")
        C.check(produce(eh_conf(addr, ca, send), "py-eh", ["s-1"]) == [None],
                "Send produces to its hub")
        errs = produce(eh_conf(addr, ca, send), "py-eh-other", ["x"])
        C.check(errs[0] is not None and "AUTHORIZATION" in errs[0].name(),
                "Send cannot produce to another hub", str(errs))
        got, err = consume(eh_conf(addr, ca, send), "py-eh", 1)
        C.check(err is not None and "AUTHORIZATION" in err.name(), "Send cannot consume",
                str(err))
        got, err = consume(eh_conf(addr, ca, listen), "py-eh", 2)
        C.check(got == ["m-1", "s-1"] and err is None, "Listen consumes with $Default",
                f"{got} {err}")
        errs = produce(eh_conf(addr, ca, listen), "py-eh", ["x"])
        C.check(errs[0] is not None and "AUTHORIZATION" in errs[0].name(),
                "Listen cannot produce", str(errs))
        scoped = f"{manage};EntityPath=py-eh"
        errs = produce(eh_conf(addr, ca, scoped), "py-eh-other", ["x"])
        C.check(errs[0] is not None and "AUTHORIZATION" in errs[0].name(),
                "EntityPath limits a namespace policy to its hub", str(errs))
        key = manage.split("SharedAccessKey=")[1].split(";")[0]
        wrong = manage.replace(key, "A" * 43 + "=")
        C.check(refused_login(eh_conf(addr, ca, wrong)), "a wrong key is refused")

        java = subprocess.run(["bash", os.path.join(HERE, "java", "run.sh"), "eventhubs",
                               "eventhubs", addr, ca, manage, java_send, listen], timeout=900)
        C.check(java.returncode == 0, "the Java client's Event Hubs checks (output above)")


def acls():
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)
    args = ["--set", "listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "--set", "sasl.enabled.mechanisms=PLAIN",
            "--set", f"plain.sasl.jaas.config={JAAS}",
            "--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--set", "super.users=User:admin"]
    with Broker(args) as b:
        addr = b.listeners["SASL_PLAINTEXT"]

        def conf(user):
            return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN", "sasl.username": user,
                    "sasl.password": f"{user}-secret", "message.timeout.ms": 10000}

        admin = AdminClient(conf("admin"))
        admin.create_topics([NewTopic("py-acl", 1, 1)])["py-acl"].result(20)
        errs = produce(conf("alice"), "py-acl", ["x"])
        C.check(errs[0] is not None and "AUTHORIZATION" in errs[0].name(),
                "alice may not produce without an ACL", str(errs))
        write = AclBinding(ResourceType.TOPIC, "py-acl", ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        read = AclBinding(ResourceType.TOPIC, "py-", ResourcePatternType.PREFIXED,
                          "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
        group = AclBinding(ResourceType.GROUP, "*", ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
        for f in admin.create_acls([write, read, group]).values():
            f.result(20)
        C.ok("confluent-kafka created three ACLs")
        any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None,
                                      None, AclOperation.ANY, AclPermissionType.ANY)
        listed = admin.describe_acls(any_filter).result(20)
        C.check(sorted(map(str, listed)) == sorted(map(str, [write, read, group])),
                "describe_acls lists them", str(listed))
        C.check(produce(conf("alice"), "py-acl", ["a-1"]) == [None],
                "alice produces with WRITE")
        got, err = consume(conf("alice"), "py-acl", 1, group="py-acl-g")
        C.check(got == ["a-1"] and err is None, "alice consumes with READ", f"{got} {err}")
        deleted = admin.delete_acls([AclBindingFilter(
            ResourceType.TOPIC, "py-acl", ResourcePatternType.LITERAL, "User:alice", None,
            AclOperation.WRITE, AclPermissionType.ANY)])
        removed = list(deleted.values())[0].result(20)
        C.check(len(removed) == 1, "delete_acls removed the WRITE ACL", str(removed))
        errs = produce(conf("alice"), "py-acl", ["x"])
        C.check(errs[0] is not None and "AUTHORIZATION" in errs[0].name(),
                "alice may not produce after the delete", str(errs))
        alice_admin = AdminClient(conf("alice"))  # kept alive while its futures run
        try:
            for f in alice_admin.create_acls([write]).values():
                f.result(20)
            denied, why = False, "created"
        except KafkaException as e:
            why = e.args[0]
            denied = why.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
        C.check(denied, "alice may not create ACLs", str(why))

        java = subprocess.run(["bash", os.path.join(HERE, "java", "run.sh"), "eventhubs",
                               "acls", addr], timeout=900)
        C.check(java.returncode == 0, "the Java client's ACL checks (output above)")


def main():
    import tempfile
    pki = make_pki(tempfile.mkdtemp(prefix="runnel-compat-pki-"))
    event_hubs(pki)
    acls()
    C.done()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
