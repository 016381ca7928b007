"""Runnel as a drop-in for Microsoft's Event Hubs emulator: `runnel serve
--eventhubs-config` with the emulator's own sample Config.json, and the emulator's
documented connection string, unchanged, for the Python azure-eventhub SDK over AMQP
on 5672 and for confluent-kafka over Kafka (SASL PLAIN, `$ConnectionString`) on 9092,
plus the health endpoint on 5300. These are the emulator's fixed ports, so nothing else
may hold them while this runs.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

from runnel_broker import Checks, runnel_bin, REPO

C = Checks("event-hubs-emulator")
CONFIG = os.path.join(REPO, "amqp", "tests", "fixtures", "emulator-Config.json")
# As the emulator's README gives it.
CS = ("Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;"
      "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")


def main():
    from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
    from confluent_kafka import Consumer, Producer, TopicPartition
    work = tempfile.mkdtemp(prefix="runnel-emulator-")
    err = open(os.path.join(work, "stderr.log"), "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNEL_")}
    proc = subprocess.Popen([runnel_bin(), "serve", "--eventhubs-config", CONFIG,
                             "--data-dir", os.path.join(work, "data"),
                             "--set", "metrics.listener="],
                            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    ok = False
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("runnel health on "):
                break
        C.check("runnel listener SASL_PLAINTEXT on 127.0.0.1:9092" in lines
                and "runnel amqp on 127.0.0.1:5672" in lines
                and "runnel health on 127.0.0.1:5300" in lines,
                "the emulator's ports: Kafka SASL on 9092, AMQP on 5672, health on 5300", lines)
        with urllib.request.urlopen("http://127.0.0.1:5300/health", timeout=10) as r:
            body = r.read().decode()
        C.check(r.status == 200 and '"status":"healthy"' in body, "GET /health", body)

        with EventHubProducerClient.from_connection_string(CS, eventhub_name="eh1") as p:
            props = p.get_eventhub_properties()
            C.check(props["partition_ids"] == ["0", "1"], "hub eh1 with the config's 2 partitions",
                    props)
            batch = p.create_batch(partition_id="1")
            batch.add(EventData("via-amqp"))
            p.send_batch(batch)
        got = []
        for group in ("cg1", "$Default"):
            c = EventHubConsumerClient.from_connection_string(CS, consumer_group=group,
                                                              eventhub_name="eh1")
            seen = []
            t = threading.Thread(target=c.receive, daemon=True, kwargs=dict(
                on_event=lambda ctx, e: seen.append(e.body_as_str()), partition_id="1",
                starting_position="-1"))
            t.start()
            deadline = time.time() + 15
            while not seen and time.time() < deadline:
                time.sleep(0.2)
            c.close()
            t.join(10)
            got.append(seen)
        C.check(got == [["via-amqp"], ["via-amqp"]],
                "the config's consumer group cg1 and $Default both read it", got)
        unknown_errors = []
        c = EventHubConsumerClient.from_connection_string(CS, consumer_group="nope",
                                                          eventhub_name="eh1", retry_total=0)
        t = threading.Thread(target=c.receive, daemon=True, kwargs=dict(
            on_event=lambda ctx, e: None, on_error=lambda ctx, e: unknown_errors.append(e),
            partition_id="0", starting_position="-1"))
        t.start()
        deadline = time.time() + 15
        while not unknown_errors and time.time() < deadline:
            time.sleep(0.2)
        c.close()
        t.join(10)
        C.check(unknown_errors, "a consumer group not in the config is refused", unknown_errors)

        conf = {"bootstrap.servers": "localhost:9092", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString",
                "sasl.password": CS}
        kp = Producer(conf)
        kp.produce("eh1", b"via-kafka", partition=1)
        C.check(kp.flush(20) == 0, "a Kafka producer with the same connection string")
        kc = Consumer({**conf, "group.id": "emulator-check", "enable.auto.commit": False})
        kc.assign([TopicPartition("eh1", 1, 0)])
        values, deadline = [], time.time() + 20
        while len(values) < 2 and time.time() < deadline:
            m = kc.poll(1)
            if m is not None and not m.error():
                values.append(m.value())
        kc.close()
        C.check(values == [b"via-amqp", b"via-kafka"],
                "a Kafka consumer reads both, in order", values)
        ok = True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            ok = False
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            with open(os.path.join(work, "stderr.log"), errors="replace") as f:
                print("".join(f.readlines()[-40:]))
    C.done()


if __name__ == "__main__":
    main()
