"""The Event Hubs AMQP 1.0 endpoint with Microsoft's Python SDK (azure-eventhub, its
pure-Python AMQP stack), connected as a user connects to the emulator: a connection
string with UseDevelopmentEmulator=true. Covers the hub and partition properties,
send_batch to the hub, to a partition and with a partition key, receiving from every
kind of starting position, epoch receivers, SAS tokens (wrong, expired, without the
right), and records written by Kafka read over AMQP and back, byte for byte.
"""

import base64
import datetime
import hashlib
import hmac
import subprocess
import threading
import time
import urllib.parse

from runnel_broker import Broker, Checks, runnel_bin

C = Checks("event-hubs-amqp")
HUB = "eh1"
PARTITIONS = 4


def sas_policy(data_dir, name, rights, *extra):
    out = subprocess.run([runnel_bin(), "sas", "policy", "add", name, "--rights", rights,
                          *extra, "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=30)
    C.check(out.returncode == 0, f"runnel sas policy add {name} ({rights})", out.stderr)
    line = next(l for l in out.stdout.splitlines() if l.startswith("primary:"))
    cs = line.split(":", 1)[1].strip()
    return dict(p.split("=", 1) for p in cs.split(";") if "=" in p)["SharedAccessKey"]


def sign(resource, name, key, expiry):
    sr = urllib.parse.quote_plus(resource)
    sig = base64.b64encode(hmac.new(key.encode(), f"{sr}\n{expiry}".encode(),
                                    hashlib.sha256).digest()).decode()
    return (f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote_plus(sig)}"
            f"&se={expiry}&skn={name}")


def conn_str(addr, name, key):
    return (f"Endpoint=sb://{addr};SharedAccessKeyName={name};SharedAccessKey={key};"
            "UseDevelopmentEmulator=true")


def producer(cs, **kw):
    from azure.eventhub import EventHubProducerClient
    return EventHubProducerClient.from_connection_string(cs, eventhub_name=HUB, **kw)


def consumer(cs, consumer_group="$Default", **kw):
    from azure.eventhub import EventHubConsumerClient
    return EventHubConsumerClient.from_connection_string(
        cs, consumer_group=consumer_group, eventhub_name=HUB, **kw)


def receive(cs, partition, want, timeout=20, client_kw=None, consumer_group="$Default", **kw):
    """Events of one partition from a starting position, until `want` arrived."""
    got, errors = [], []
    done = threading.Event()
    client = consumer(cs, consumer_group=consumer_group, **(client_kw or {}))

    def on_event(ctx, ev):
        if ev is None:
            return
        got.append(ev)
        if len(got) >= want:
            done.set()

    def on_error(ctx, err):
        errors.append(err)
        done.set()

    t = threading.Thread(target=client.receive, daemon=True,
                         kwargs=dict(on_event=on_event, on_error=on_error,
                                     partition_id=partition, **kw))
    t.start()
    done.wait(timeout)
    # A little longer, to see events that should not be there.
    time.sleep(0.5)
    client.close()
    t.join(10)
    return got, errors


def send(cs, bodies, **batch_kw):
    from azure.eventhub import EventData
    with producer(cs) as p:
        b = p.create_batch(**batch_kw)
        for body in bodies:
            e = EventData(body)
            e.properties = {"n": 7, "s": "text"}
            b.add(e)
        p.send_batch(b)


def main():
    from azure.eventhub import EventData
    from azure.eventhub.exceptions import EventHubError
    with Broker(["--set", "eventhubs.amqp.listener=127.0.0.1:0",
                 "--num-partitions", str(PARTITIONS)]) as b:
        addr = b.amqp_addr()
        data = b.dir + "/data"
        created = subprocess.run([runnel_bin(), "topics", "create", HUB, "--partitions",
                                  str(PARTITIONS), "--bootstrap-server", b.bootstrap],
                                 capture_output=True, text=True, timeout=30)
        C.check(created.returncode == 0, "hub created with runnel topics create", created.stderr)
        root = sas_policy(data, "RootManageSharedAccessKey", "Manage")
        send_key = sas_policy(data, "sender", "Send")
        listen_key = sas_policy(data, "listener", "Listen")
        time.sleep(2.5)  # the broker reloads its security store every 2 s
        cs = conn_str(addr, "RootManageSharedAccessKey", root)

        # -- properties, before any event
        with producer(cs) as p:
            hub = p.get_eventhub_properties()
            C.check(hub["eventhub_name"] == HUB, "hub name", hub)
            C.check(hub["partition_ids"] == ["0", "1", "2", "3"], "partition ids", hub)
            C.check(isinstance(hub["created_at"], datetime.datetime), "created_at is a time", hub)
            part = p.get_partition_properties("1")
            C.check(part["is_empty"] is True and part["last_enqueued_sequence_number"] == -1
                    and part["last_enqueued_offset"] == "-1"
                    and part["beginning_sequence_number"] == 0,
                    "an empty partition's properties", part)

        # -- sends: to a partition, with a key, to the hub
        before = time.time()
        send(cs, ["p1-a", "p1-b", "p1-c"], partition_id="1")
        with producer(cs) as p:
            part = p.get_partition_properties("1")
        C.check(part["last_enqueued_sequence_number"] == 2 and part["last_enqueued_offset"] == "2"
                and part["is_empty"] is False, "partition 1 after three events", part)
        enq = part["last_enqueued_time_utc"].timestamp()
        C.check(before - 5 <= enq <= time.time() + 5, "last enqueued time is broker time", part)
        # Event Hubs' partition-key hash: lookup3, (short)(h1^h2) = -15263 for "7", so
        # |(-15263) % 4| = 3 with C#'s truncated remainder.
        send(cs, ["keyed"], partition_key="7")
        got, errs = receive(cs, "3", 1, starting_position="-1")
        C.check([e.body_as_str() for e in got] == ["keyed"], "partition key 7 lands on partition 3",
                ([e.body_as_str() for e in got], [str(e) for e in errs]))
        C.check(got[0].partition_key == b"7", "the partition key comes back", got[0].partition_key)
        send(cs, [f"rr-{i}" for i in range(4)])
        total = 0
        for pid in ["0", "1", "2", "3"]:
            g, _ = receive(cs, pid, 10, timeout=3, starting_position="-1")
            total += len([e for e in g if e.body_as_str().startswith("rr-")])
        C.check(total == 4, "a batch to the hub is stored once", total)

        # -- an event larger than a frame (64 KiB): a multi-frame transfer, both ways
        big = bytes(range(256)) * 1500  # 384000 bytes
        with producer(cs) as p:
            batch = p.create_batch(partition_id="2")
            batch.add(EventData(big))
            p.send_batch(batch)
        got, errs = receive(cs, "2", 1, starting_position="-1")
        C.check(len(got) == 1 and b"".join(got[0].body) == big,
                "a 384 KB event goes and comes back in several frames, byte for byte",
                ([len(b"".join(e.body)) for e in got], [str(e) for e in errs]))

        # -- a consumer group added at runtime
        _, errs = receive(cs, "2", 1, timeout=10, starting_position="-1",
                          client_kw={"retry_total": 0}, consumer_group="late")
        C.check(errs and "not-found" in str(errs[0]), "an unknown consumer group is not found",
                [str(e) for e in errs])
        altered = subprocess.run([runnel_bin(), "topics", "alter-config", HUB, "--set",
                                  "eventhubs.consumer.groups=late", "--bootstrap-server",
                                  b.bootstrap], capture_output=True, text=True, timeout=30)
        C.check(altered.returncode == 0, "runnel topics alter-config adds a consumer group",
                altered.stderr)
        got, errs = receive(cs, "2", 1, starting_position="-1", consumer_group="late")
        C.check(len(got) == 1 and not errs, "the new consumer group reads at once",
                [str(e) for e in errs])

        # -- starting positions on partition 1 (sequence numbers 0, 1, 2)
        got, errs = receive(cs, "1", 3, starting_position="-1")
        C.check([e.body_as_str() for e in got] == ["p1-a", "p1-b", "p1-c"] and not errs,
                "from -1: every event, in order", [e.body_as_str() for e in got])
        e0 = got[0]
        C.check(e0.sequence_number == 0 and e0.offset == "0", "sequence number and offset",
                (e0.sequence_number, e0.offset))
        C.check(e0.properties == {b"n": 7, b"s": b"text"}, "application properties round-trip",
                e0.properties)
        got, _ = receive(cs, "1", 2, starting_position="0")
        C.check([e.body_as_str() for e in got] == ["p1-b", "p1-c"], "offset '0' is exclusive",
                [e.body_as_str() for e in got])
        got, errs = receive(cs, "1", 2, starting_position="1", starting_position_inclusive=True)
        C.check([e.body_as_str() for e in got] == ["p1-b", "p1-c"], "offset '1' inclusive",
                ([e.body_as_str() for e in got], [str(e) for e in errs]))
        got, _ = receive(cs, "1", 1, starting_position=1, starting_position_inclusive=False)
        C.check([e.body_as_str() for e in got] == ["p1-c"], "sequence number 1 exclusive",
                [e.body_as_str() for e in got])
        got, _ = receive(cs, "1", 2, starting_position=e0.enqueued_time,
                         starting_position_inclusive=True)
        C.check([e.body_as_str() for e in got] == ["p1-a", "p1-b", "p1-c"][:len(got)] and got,
                "from the first event's enqueued time, inclusive", [e.body_as_str() for e in got])
        got, _ = receive(cs, "1", 3, starting_position=e0.enqueued_time - datetime.timedelta(seconds=1))
        C.check([e.body_as_str() for e in got] == ["p1-a", "p1-b", "p1-c"],
                "from an enqueued time before the first event", [e.body_as_str() for e in got])
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        got, _ = receive(cs, "1", 1, timeout=3, starting_position=later)
        C.check(got == [], "from an enqueued time in the future: nothing yet", len(got))

        # @latest: only what is sent after the receiver attached.
        latest = []
        client = consumer(cs)
        t = threading.Thread(target=client.receive, daemon=True, kwargs=dict(
            on_event=lambda ctx, ev: latest.append(ev.body_as_str()),
            partition_id="1", starting_position="@latest"))
        t.start()
        time.sleep(3)
        send(cs, ["after-latest"], partition_id="1")
        deadline = time.time() + 15
        while not latest and time.time() < deadline:
            time.sleep(0.2)
        client.close()
        t.join(10)
        C.check(latest == ["after-latest"], "@latest: only the new event", latest)

        # -- epochs: owner level 1 steals from owner level 0; lower and none are refused
        stolen = []
        holder = consumer(cs)
        th = threading.Thread(target=holder.receive, daemon=True, kwargs=dict(
            on_event=lambda ctx, ev: None, on_error=lambda ctx, err: stolen.append(err),
            partition_id="2", starting_position="-1", owner_level=0))
        th.start()
        time.sleep(3)
        thief_errors = []
        thief = consumer(cs)
        tt = threading.Thread(target=thief.receive, daemon=True, kwargs=dict(
            on_event=lambda ctx, ev: None, on_error=lambda ctx, err: thief_errors.append(err),
            partition_id="2", starting_position="-1", owner_level=1))
        tt.start()
        deadline = time.time() + 15
        while not stolen and time.time() < deadline:
            time.sleep(0.2)
        holder.close()
        th.join(10)
        C.check(stolen and "stolen" in str(stolen[0]).lower(),
                "owner level 1 takes the partition from owner level 0 (link stolen)",
                [str(e) for e in stolen])
        for level in (0, None):
            _, errs = receive(cs, "2", 1, timeout=8, starting_position="-1", owner_level=level)
            C.check(errs and "stolen" in str(errs[0]).lower(),
                    f"owner level {level} is refused while level 1 holds the partition",
                    [str(e) for e in errs])
        thief.close()
        tt.join(10)
        C.check(not thief_errors, "the epoch holder kept its link", [str(e) for e in thief_errors])

        # -- tokens and rights
        def fails(fn, what):
            try:
                fn()
            except EventHubError as e:
                C.ok(f"{what}: {type(e).__name__}")
                return
            raise AssertionError(f"{what}: no error")

        bad = conn_str(addr, "RootManageSharedAccessKey", base64.b64encode(b"x" * 32).decode())
        fails(lambda: send(bad, ["x"], partition_id="0"), "a wrong key is refused")
        past = int(time.time()) - 60
        expired = (f"Endpoint=sb://{addr};SharedAccessSignature="
                   f"{sign(f'sb://{addr}/{HUB}', 'RootManageSharedAccessKey', root, past)};"
                   "UseDevelopmentEmulator=true")
        fails(lambda: send(expired, ["x"], partition_id="0"), "an expired token is refused")
        good_token = (f"Endpoint=sb://{addr};SharedAccessSignature="
                      f"{sign(f'sb://{addr}/{HUB}', 'sender', send_key, int(time.time()) + 600)};"
                      "UseDevelopmentEmulator=true")
        send(good_token, ["by-token"], partition_id="0")
        C.ok("a valid token signed with the Send policy's key sends")
        # A token that expires while its link is open: the broker closes the link with
        # amqp:unauthorized-access at the token's `se`. The SDK would notice a known
        # expiry itself, so this credential tells it the token lasts an hour.
        from azure.core.credentials import AccessToken
        from azure.eventhub import EventHubConsumerClient

        class Unrenewed:
            token_type = b"servicebus.windows.net:sastoken"

            def get_token(self, *scopes, **kw):
                t = sign(f"sb://{addr}/{HUB}", "RootManageSharedAccessKey", root,
                         int(time.time()) + 6)
                return AccessToken(t, int(time.time()) + 3600)

        client = EventHubConsumerClient(addr, HUB, "$Default", Unrenewed(), use_tls=False,
                                        retry_total=0)
        seen, closed = [], []
        started = time.time()
        t = threading.Thread(target=client.receive, daemon=True, kwargs=dict(
            on_event=lambda ctx, ev: seen.append(ev), on_error=lambda ctx, e: closed.append(
                (time.time() - started, e)), partition_id="0", starting_position="-1"))
        t.start()
        deadline = time.time() + 25
        while not closed and time.time() < deadline:
            time.sleep(0.2)
        client.close()
        t.join(10)
        C.check(seen and closed and "unauthorized" in str(closed[0][1]).lower()
                and closed[0][0] >= 4,
                "a link whose token expires is closed by the broker at the expiry",
                (len(seen), [(round(a, 1), str(e)) for a, e in closed]))
        send_only = conn_str(addr, "sender", send_key)
        _, errs = receive(send_only, "0", 1, timeout=15, starting_position="-1",
                          client_kw={"retry_total": 0})
        C.check(errs, "a Send-only policy cannot receive", errs)
        listen_only = conn_str(addr, "listener", listen_key)
        fails(lambda: send(listen_only, ["x"], partition_id="0"), "a Listen-only policy cannot send")
        got, errs = receive(listen_only, "0", 1, starting_position="-1")
        C.check(got and not errs, "a Listen-only policy receives", errs)

        # -- Kafka and AMQP, both ways, byte for byte
        from confluent_kafka import Consumer, Producer, TopicPartition
        raw = bytes(range(256))
        kp = Producer({"bootstrap.servers": b.bootstrap})
        kp.produce(HUB, raw, key=b"kafka-key", partition=0, headers=[("h1", b"\x00\x01v")])
        kp.flush(30)
        got, _ = receive(cs, "0", 10, timeout=6, starting_position="-1")
        kafka_made = [e for e in got if e.body == raw or b"".join(e.body) == raw]
        C.check(len(kafka_made) == 1, "a Kafka record reads over AMQP with its bytes", len(got))
        ev = kafka_made[0]
        C.check(ev.properties == {b"h1": b"\x00\x01v"}, "Kafka headers read as binary properties",
                ev.properties)
        C.check(ev.raw_amqp_message.annotations.get(b"x-opt-kafka-key") == b"kafka-key",
                "the Kafka key reads as x-opt-kafka-key", ev.raw_amqp_message.annotations)
        with producer(cs) as p:
            batch = p.create_batch(partition_id="3")
            e = EventData(raw)
            e.properties = {"n": 7}
            batch.add(e)
            p.send_batch(batch)
        kc = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "interop",
                       "enable.auto.commit": False})
        kc.assign([TopicPartition(HUB, 3, 0)])
        records, deadline = [], time.time() + 20
        while time.time() < deadline and not any(m.value() == raw for m in records):
            m = kc.poll(1)
            if m is not None and not m.error():
                records.append(m)
        kc.close()
        amqp_made = [m for m in records if m.value() == raw]
        C.check(len(amqp_made) == 1, "an AMQP event reads over Kafka with its bytes", len(records))
        headers = dict(amqp_made[0].headers() or [])
        # An AMQP int 7: smallint (0x54 0x07) or int (0x71 + 4 bytes).
        C.check(headers.get("n") in (b"\x54\x07", b"\x71\x00\x00\x00\x07"),
                "application properties read as AMQP-encoded headers", headers)

        # -- Kafka transactions seen from AMQP: receivers read committed data only
        tp = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "amqp-txn"})
        tp.init_transactions(30)
        tp.begin_transaction()
        for i in range(2):
            tp.produce(HUB, f"txn-committed-{i}".encode(), partition=1)
        tp.commit_transaction(30)
        tp.begin_transaction()
        tp.produce(HUB, b"txn-aborted-0", partition=1)
        tp.flush(30)
        tp.abort_transaction(30)
        tp.begin_transaction()
        tp.produce(HUB, b"txn-open-0", partition=1)
        tp.flush(30)

        def txn_bodies(events):
            out = []
            for e in events:
                body = e.body if isinstance(e.body, bytes) else b"".join(e.body)
                if body.startswith(b"txn-"):
                    out.append(body.decode())
            return out
        got, _ = receive(cs, "1", 1000, timeout=6, starting_position="-1")
        C.check(txn_bodies(got) == ["txn-committed-0", "txn-committed-1"],
                "an AMQP receiver gets a committed Kafka transaction, not an aborted or open one",
                txn_bodies(got))
        tp.commit_transaction(30)
        got, _ = receive(cs, "1", 1000, timeout=6, starting_position="-1")
        C.check(txn_bodies(got) == ["txn-committed-0", "txn-committed-1", "txn-open-0"],
                "once committed, the open transaction's event arrives", txn_bodies(got))
    amqps()
    C.done()


def amqps():
    """The endpoint with TLS (eventhubs.amqps.listener), the broker's ssl.* key."""
    import tempfile
    from azure.eventhub import EventData
    from security_check import make_pki
    pki = make_pki(tempfile.mkdtemp(prefix="runnel-amqps-"))
    with Broker(["--set", "eventhubs.amqp.listener=", "--set", "eventhubs.amqps.listener=127.0.0.1:0",
                 "--set", f"ssl.keystore.location={pki['broker.pem']}"]) as b:
        deadline = time.time() + 10
        while b.amqps is None and time.time() < deadline:
            time.sleep(0.1)
        C.check(b.amqps is not None, "the broker serves AMQPS", b.amqps)
        port = b.amqps.rsplit(":", 1)[1]
        data = b.dir + "/data"
        subprocess.run([runnel_bin(), "topics", "create", HUB, "--partitions", "1",
                        "--bootstrap-server", b.bootstrap], check=True, capture_output=True)
        key = sas_policy(data, "RootManageSharedAccessKey", "Manage")
        time.sleep(2.5)
        # A TLS connection string, as for Azure, pointed at this port.
        cs = f"Endpoint=sb://localhost/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
        tls = {"custom_endpoint_address": f"sb://localhost:{port}", "connection_verify": pki["ca.pem"]}
        from azure.eventhub import EventHubProducerClient
        with EventHubProducerClient.from_connection_string(cs, eventhub_name=HUB, **tls) as p:
            batch = p.create_batch(partition_id="0")
            batch.add(EventData("over-tls"))
            p.send_batch(batch)
        got, errs = receive(cs, "0", 1, starting_position="-1", client_kw=tls)
        C.check([e.body_as_str() for e in got] == ["over-tls"] and not errs,
                "send and receive over AMQPS, the certificate checked against the CA",
                ([e.body_as_str() for e in got], [str(e) for e in errs]))


if __name__ == "__main__":
    main()
