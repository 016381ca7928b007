"""Three EventProcessorClient processes sharing an 8-partition hub through Runnel's blob
checkpoint store: the Python azure-eventhub `EventHubConsumerClient` with a
`BlobCheckpointStore` (azure-eventhub-checkpointstoreblob), each in its own OS process,
checkpointing after every event.

    python event_hubs_processor_check.py                  # the check (starts a broker)
    python event_hubs_processor_check.py worker LOG CS BLOB_CS CONTAINER   # one processor

Checks: the processors split the partitions (each partition owned by exactly one process
at a time once balanced, all three owning some), a SIGKILLed processor's partitions are
claimed by the survivors once its ownership expires and reading resumes from its last
checkpoints, and every event sent (before the processors start, while they balance,
around the kill) is processed at least once. Duplicates are counted and must each come
from a handover: while the processors balance at the start (a new owner starts at the
checkpoint it read when it claimed, and the old one keeps going until the new one's
receiver takes the link), or the takeover, for the killed worker's events past its last
checkpoint (it is killed between an event and its checkpoint when the check catches it
there). Once balanced, no partition changes hands until the kill.

Each worker logs, one JSON line each, its claims and closes (on_partition_initialize,
on_partition_close), every event and every checkpoint; the check reads those logs and the
ownership and checkpoint blobs. About 50 s.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

HUB = "ehproc"
PARTITIONS = 8
N = 800
BEFORE = 300  # sent before the processors start; the rest while they run
BURST = 80  # sent at once around the kill
CG = "$Default"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "processor-check"
# The SDK's defaults are 30 s and 6 x that; these keep the run short.
BALANCE_S = 2.0
EXPIRY_S = 6.0
# The sync processor serves its partitions in turn, each turn waiting up to the socket
# timeout (0.2 s by default) for a frame: with 4 partitions that is ~1 event a second
# per partition, slower than the producer here.
SOCKET_TIMEOUT_S = 0.05


def blob_conn_str(blob_addr):
    return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={DEV_KEY};BlobEndpoint=http://{blob_addr}/devstoreaccount1;")


def consumer_client(cs, store):
    from azure.eventhub import EventHubConsumerClient
    return EventHubConsumerClient.from_connection_string(
        cs, consumer_group=CG, eventhub_name=HUB, checkpoint_store=store,
        load_balancing_interval=BALANCE_S, partition_ownership_expiration_interval=EXPIRY_S,
        socket_timeout=SOCKET_TIMEOUT_S)


# ---------------------------------------------------------------- worker process

def worker(log_path, cs, blob_cs, container):
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    store = BlobCheckpointStore.from_connection_string(blob_cs, container)
    client = consumer_client(cs, store)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lock = threading.Lock()

    def log(**rec):
        rec["t"] = time.time()
        # One write per line, straight to the kernel: a SIGKILL loses nothing logged.
        with lock:
            os.write(fd, (json.dumps(rec) + "\n").encode())

    def owner_id():
        # The processor's owner id is private; the pinned SDK keeps it here.
        procs = list(client._event_processors.values())
        return procs[0]._id if procs else None

    def on_init(ctx):
        log(kind="claim", p=ctx.partition_id, owner=owner_id())

    def on_close(ctx, reason):
        log(kind="close", p=ctx.partition_id, reason=str(reason))

    def on_error(ctx, err):
        log(kind="error", p=ctx.partition_id if ctx else None, err=repr(err)[:300])

    def on_event(ctx, ev):
        if ev is None:
            return
        log(kind="event", p=ctx.partition_id, seq=ev.sequence_number, body=ev.body_as_str())
        ctx.update_checkpoint(ev)
        log(kind="checkpoint", p=ctx.partition_id, seq=ev.sequence_number)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log(kind="start", pid=os.getpid())
    t = threading.Thread(target=client.receive, daemon=True, kwargs=dict(
        on_event=on_event, on_error=on_error, on_partition_initialize=on_init,
        on_partition_close=on_close, starting_position="-1"))
    t.start()
    while not stop.wait(0.2):
        if not t.is_alive():
            log(kind="receive-ended")
            return 1
    client.close()
    t.join(20)
    log(kind="stopped", clean=not t.is_alive())
    return 0


# ---------------------------------------------------------------- the check

def read_log(path):
    recs = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    recs.append(json.loads(line))
    except FileNotFoundError:
        pass
    return recs


class Worker:
    def __init__(self, name, path, args):
        self.name = name
        self.path = path
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", path,
                                      *args], stdin=subprocess.DEVNULL,
                                     stderr=open(path + ".stderr", "wb"))

    def recs(self):
        return read_log(self.path)

    def owner(self):
        return next((r["owner"] for r in self.recs() if r["kind"] == "claim" and r["owner"]), None)

    def open_partitions(self, until=None):
        """Partitions this process had claimed and not closed at time `until`."""
        held = set()
        for r in self.recs():
            if until is not None and r["t"] > until:
                break
            if r["kind"] == "claim":
                held.add(r["p"])
            elif r["kind"] == "close":
                held.discard(r["p"])
        return held


def last_kind(path):
    """The kind of the log's last line, reading only its tail."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 400))
        tail = f.read().decode(errors="replace")
    lines = tail.rstrip("\n").rsplit("\n", 1)
    try:
        return json.loads(lines[-1])["kind"]
    except (ValueError, KeyError):
        return None


def sessions(recs):
    """Per partition, the runs of events from a claim to its close: [(claim_t, [seqs])]."""
    out = defaultdict(list)
    for r in recs:
        if r["kind"] == "claim":
            out[r["p"]].append((r["t"], []))
        elif r["kind"] == "event":
            if not out[r["p"]]:
                out[r["p"]].append((r["t"], []))
            out[r["p"]][-1][1].append(r["seq"])
    return out


def main():
    from runnel_broker import Broker, Checks, runnel_bin
    from azure.eventhub import EventData, EventHubProducerClient
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    from azure.storage.blob import BlobServiceClient

    C = Checks("event-hubs-processor")
    started = time.time()
    with Broker(["--set", "eventhubs.amqp.listener=127.0.0.1:0",
                 "--set", "eventhubs.blob.listener=127.0.0.1:0"]) as b:
        addr, blob = b.amqp_addr(), b.blob_addr()
        created = subprocess.run([runnel_bin(), "topics", "create", HUB, "--partitions",
                                  str(PARTITIONS), "--bootstrap-server", b.bootstrap],
                                 capture_output=True, text=True, timeout=30)
        C.check(created.returncode == 0, f"hub {HUB} with {PARTITIONS} partitions",
                created.stderr)
        out = subprocess.run([runnel_bin(), "sas", "policy", "add", "RootManageSharedAccessKey",
                              "--rights", "Manage", "--data-dir", b.dir + "/data"],
                             capture_output=True, text=True, timeout=30)
        C.check(out.returncode == 0, "a Manage policy", out.stderr)
        line = next(l for l in out.stdout.splitlines() if l.startswith("primary:"))
        key = dict(p.split("=", 1) for p in line.split(":", 1)[1].strip().split(";")
                   if "=" in p)["SharedAccessKey"]
        cs = (f"Endpoint=sb://{addr};SharedAccessKeyName=RootManageSharedAccessKey;"
              f"SharedAccessKey={key};UseDevelopmentEmulator=true")
        blob_cs = blob_conn_str(blob)
        BlobServiceClient.from_connection_string(blob_cs).create_container(CONTAINER)
        store = BlobCheckpointStore.from_connection_string(blob_cs, CONTAINER)
        time.sleep(2.5)  # the broker reloads its security store every 2 s

        producer = EventHubProducerClient.from_connection_string(cs, eventhub_name=HUB)
        sent_at = {}

        def send(i):
            batch = producer.create_batch(partition_id=str(i % PARTITIONS))
            batch.add(EventData(f"ev-{i}"))
            producer.send_batch(batch)
            sent_at[i] = time.time()

        for i in range(BEFORE):
            send(i)
        C.ok(f"{BEFORE} events sent before the processors start")

        # The rest while they run: paced to last through balancing, the kill and recovery.
        send_errors = []
        # The main thread asks for a burst just before the kill, so that the killed
        # process is likely busy with events it has not checkpointed yet.
        burst = {"left": 0, "half": threading.Event(), "go": threading.Event()}

        def produce():
            try:
                for i in range(BEFORE, N):
                    # Keep the last events for the kill, however long balancing takes
                    # on a loaded machine.
                    if N - i <= 2 * BURST + 20 and not burst["go"].is_set():
                        burst["go"].wait(180)
                    send(i)
                    if burst["left"] > 0:
                        burst["left"] -= 1
                        if burst["left"] == BURST // 2:
                            burst["half"].set()
                    else:
                        time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                send_errors.append(repr(e))

        logdir = os.path.join(b.dir, "workers")
        os.makedirs(logdir)
        args = [cs, blob_cs, CONTAINER]
        workers = [Worker(f"w{k}", os.path.join(logdir, f"w{k}.log"), args) for k in range(3)]
        producing = threading.Thread(target=produce, daemon=True)
        producing.start()
        try:
            run(C, store, workers, sent_at, producing, send_errors, addr, burst)
        finally:
            for w in workers:
                if w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.wait()
            producer.close()
            for w in workers:
                print(f"  {w.name}: log {w.path}")
    C.ok(f"the whole run took {time.time() - started:.0f} s")
    C.done()


def ownership(store, addr):
    # The SDK names the namespace by the endpoint's host:port.
    return {o["partition_id"]: o for o in store.list_ownership(addr, HUB, CG)}


def run(C, store, workers, sent_at, producing, send_errors, addr, burst):
    pids = [str(p) for p in range(PARTITIONS)]
    all_p = set(pids)

    def owners_now():
        own = ownership(store, addr)
        now = time.time()
        return {p: o["owner_id"] for p, o in own.items()
                if o["owner_id"] and o["last_modified_time"] + EXPIRY_S > now}

    # -- balance: all 8 owned, by the three processes, unchanged for 3 intervals
    deadline = time.time() + 45
    ids = {}
    stable_since, last = None, None
    while time.time() < deadline:
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"{w.name} exited with {w.proc.returncode}")
            if w.name not in ids and w.owner():
                ids[w.name] = w.owner()
        cur = owners_now()
        if (len(ids) == 3 and set(cur) == all_p and set(cur.values()) == set(ids.values())):
            if cur != last or stable_since is None:
                stable_since, last = time.time(), cur
            elif time.time() - stable_since >= 3 * BALANCE_S * 1.2:
                break
        else:
            stable_since, last = None, cur
        time.sleep(0.5)
    else:
        raise AssertionError(f"not balanced within 45 s: owner ids {ids}, ownership {last}")
    by_owner = {n: sorted(p for p, o in last.items() if o == ids[n]) for n in ids}
    C.ok(f"balanced: {by_owner}")
    C.check(len(set(ids.values())) == 3, "three distinct owner ids", ids)
    C.check(all(by_owner[w.name] for w in workers), "all three processes own partitions",
            by_owner)
    settled_t = stable_since  # when the ownership blobs first showed this assignment
    # Measured from here on: the last handover was at least three intervals ago.
    balanced_t = time.time()
    # Every partition is held by exactly one process (per the processes' own logs) and it
    # is the one the ownership blob names: checked at several points of the stable window.
    for k in range(4):
        t = time.time()
        held = {w.name: w.open_partitions(until=t) for w in workers}
        counts = Counter(p for h in held.values() for p in h)
        C.check(all(counts[p] == 1 for p in pids) and len(counts) == PARTITIONS,
                f"sample {k}: each partition held by exactly one process", held)
        blobs = owners_now()
        C.check(all(blobs.get(p) == ids[n] for n, h in held.items() for p in h),
                f"sample {k}: the ownership blobs name the holder", (held, blobs))
        time.sleep(0.6)
    window_end = time.time()
    # In the stable window each partition's events were processed by its owner only.
    by_proc = defaultdict(set)
    for w in workers:
        for r in w.recs():
            if r["kind"] == "event" and balanced_t <= r["t"] <= window_end:
                by_proc[r["p"]].add(w.name)
    C.check(all(len(v) == 1 and ids[next(iter(v))] == last[p] for p, v in by_proc.items()),
            f"while balanced, each partition's events were processed by its owner alone "
            f"({len(by_proc)} partitions had events)", dict(by_proc))

    # -- kill the process owning the most partitions
    victim = max(workers, key=lambda w: len(by_owner[w.name]))
    survivors = [w for w in workers if w is not victim]
    victim_parts = by_owner[victim.name]
    C.check(N - len(sent_at) > 2 * BURST, "events left to send around the kill",
            N - len(sent_at))
    burst["left"] = BURST
    burst["go"].set()
    C.check(burst["half"].wait(20), f"half of a burst of {BURST} events sent")
    # Kill it between processing an event and its checkpoint if we can catch it there.
    deadline, caught = time.time() + 5, False
    while time.time() < deadline and not caught:
        caught = last_kind(victim.path) == "event"
        if not caught:
            time.sleep(0.001)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    killed_t = time.time()
    sent_before_kill = len(sent_at)
    # A request the dead process had sent may still land; nobody else writes its
    # partitions' blobs until its claims expire.
    time.sleep(1)
    # When the dead owner last renewed each claim (Last-Modified, whole seconds).
    renewed = {p: o["last_modified_time"] for p, o in ownership(store, addr).items()
               if p in victim_parts}
    ck_at_kill = {c["partition_id"]: c["sequence_number"]
                  for c in store.list_checkpoints(addr, HUB, CG)}
    late_claims = [(w.name, r["p"], r["t"] - settled_t) for w in workers for r in w.recs()
                   if r["kind"] == "claim" and settled_t + 1 <= r["t"] < killed_t]
    C.check(not late_claims, "no claims while balanced", late_claims)
    C.ok(f"SIGKILLed {victim.name} (owner of {victim_parts}; "
         f"{'between an event and its checkpoint' if caught else 'idle'}) after {sent_before_kill} events "
         f"were sent; its checkpoints {({p: ck_at_kill.get(p) for p in victim_parts})}")

    deadline = killed_t + EXPIRY_S + 6 * BALANCE_S + 10
    while time.time() < deadline:
        cur = owners_now()
        if set(cur) == all_p and ids[victim.name] not in cur.values():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"survivors did not take over: ownership {owners_now()}")
    taken_t = time.time()
    C.ok(f"{taken_t - killed_t:.1f} s after the kill all 8 partitions are owned by the "
         f"survivors, none by {victim.name} (expiry {EXPIRY_S:.0f} s)")
    C.check(set(cur.values()) <= {ids[w.name] for w in survivors}, "owned by the survivors only",
            cur)
    time.sleep(2 * BALANCE_S)  # the claimers open their receivers
    claims = {r["p"]: r["t"] for w in survivors for r in w.recs()
              if r["kind"] == "claim" and r["p"] in victim_parts and r["t"] > killed_t}
    C.check(set(claims) == set(victim_parts)
            and all(claims[p] > renewed[p] + EXPIRY_S for p in victim_parts),
            "each was claimed only after the dead owner's claim expired",
            {p: (renewed.get(p), claims.get(p)) for p in victim_parts})
    held = {w.name: w.open_partitions() for w in survivors}
    counts = Counter(p for h in held.values() for p in h)
    blobs = owners_now()
    C.check(all(counts[p] == 1 for p in pids) and len(counts) == PARTITIONS
            and all(blobs.get(p) == ids[n] for n, h in held.items() for p in h),
            "after the takeover each partition is held by exactly one survivor, as the "
            "ownership blobs say", (held, blobs))

    producing.join(60)
    C.check(not producing.is_alive() and not send_errors and len(sent_at) == N,
            f"all {N} events sent ({N - sent_before_kill} after the kill)", send_errors)

    # -- wait until every event was processed by someone
    def processed():
        seen = Counter()
        for w in workers:
            for r in w.recs():
                if r["kind"] == "event":
                    seen[r["body"]] += 1
        return seen

    # Until all are in, or 15 s without progress.
    deadline, count = time.time() + 15, 0
    while time.time() < deadline:
        seen = processed()
        if all(f"ev-{i}" in seen for i in range(N)):
            break
        if sum(seen.values()) > count:
            count, deadline = sum(seen.values()), time.time() + 15
        time.sleep(0.5)
    time.sleep(2 * BALANCE_S)  # to see events processed again late
    seen = processed()
    missing = [i for i in range(N) if f"ev-{i}" not in seen]
    C.check(not missing, f"all {N} events processed at least once", missing[:20])
    extra = set(seen) - {f"ev-{i}" for i in range(N)}
    C.check(not extra, "nothing else processed", sorted(extra)[:10])

    # -- where reading started: per process and partition, from a claim on
    checkpointed = defaultdict(set)  # partition -> sequence numbers some process checkpointed
    for w in workers:
        for r in w.recs():
            if r["kind"] == "checkpoint":
                checkpointed[r["p"]].add(r["seq"])
    # The dead worker's last checkpoint may have been stored without being logged.
    for p, seq in ck_at_kill.items():
        checkpointed[p].add(seq)
    resumed = {}
    for w in workers:
        for p, runs in sessions(w.recs()).items():
            for claim_t, seqs in runs:
                if not seqs:
                    continue
                C.check(seqs == list(range(seqs[0], seqs[0] + len(seqs))),
                        f"{w.name} partition {p}: consecutive sequence numbers from "
                        f"{seqs[0]} ({len(seqs)} events)", seqs[:50])
                C.check(seqs[0] == 0 or seqs[0] - 1 in checkpointed[p],
                        f"{w.name} partition {p}: reading starts after a checkpoint",
                        seqs[0])
                if w is not victim and p in victim_parts and claim_t > killed_t:
                    resumed[p] = seqs[0]
    want = {p: ck_at_kill.get(p, -1) + 1 for p in victim_parts}
    C.check({p: resumed.get(p) for p in victim_parts} == want,
            f"the survivors resumed the dead worker's partitions right after its last "
            f"checkpoints: {want}", resumed)

    # -- duplicates: each re-delivery must come from a handover that started reading
    # at a checkpoint older than what the previous owner had processed: one while the
    # processors balanced at the start, or the takeover of the dead worker's partitions
    # (then only events it processed past its last checkpoint).
    victim_uncheckpointed = {(r["p"], r["seq"]) for r in victim.recs()
                             if r["kind"] == "event" and r["seq"] > ck_at_kill.get(r["p"], -1)}
    times = defaultdict(list)
    for w in workers:
        claimed = {}
        for r in w.recs():
            if r["kind"] == "claim":
                claimed[r["p"]] = r["t"]
            elif r["kind"] == "event":
                times[(r["p"], r["seq"])].append((r["t"], w.name, claimed.get(r["p"], 0)))
    balancing, takeover, other = {}, {}, {}
    for k, v in times.items():
        for t, name, claim_t in sorted(v)[1:]:
            if claim_t < settled_t + 1:
                balancing[k] = v
            elif claim_t > killed_t and name != victim.name and k in victim_uncheckpointed:
                takeover[k] = v
            else:
                other[k] = v
    C.check(not other, "every event processed twice was re-read after a handover: while "
            "balancing, or past the dead worker's last checkpoint", other)
    C.check(all(len(v) == 2 for v in takeover.values()),
            f"after balancing, {len(takeover)} events were processed twice, all past the dead "
            f"worker's last checkpoints (it processed {len(victim_uncheckpointed)} events it "
            "had not checkpointed), none more than twice", takeover)
    C.ok(f"{sum(len(v) - 1 for v in times.values())} duplicate deliveries of {N} events: "
         f"{len(balancing)} events re-read after a handover while balancing, {len(takeover)} "
         "after the takeover")

    # -- the survivors stop on request
    for w in survivors:
        w.proc.send_signal(signal.SIGTERM)
    for w in survivors:
        try:
            rc = w.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        stopped = [r for r in w.recs() if r["kind"] == "stopped"]
        C.check(rc == 0 and stopped and stopped[0]["clean"], f"{w.name} stopped cleanly", rc)
    # A processor that stops gives its partitions up: an empty owner id (Set Blob
    # Metadata with If-Match on the blob it last wrote). The SDK lists an empty metadata
    # value as None, as it does against Azure.
    # It skips that when its claim looks expired by then (Last-Modified has whole
    # seconds, and its closes take a while), as against Azure.
    closed = {r["p"]: r["t"] for w in survivors for r in w.recs()
              if r["kind"] == "close" and r["reason"] == "CloseReason.SHUTDOWN"}
    left = ownership(store, addr)
    kept = {p: (o["owner_id"], round(closed.get(p, 0) - o["last_modified_time"], 1))
            for p, o in left.items() if o["owner_id"]}
    C.check(set(left) == all_p and all(p in closed for p in pids)
            and all(left[p]["last_modified_time"] + EXPIRY_S <= closed[p] + 0.5 for p in kept),
            f"the stopped processors released {PARTITIONS - len(kept)} partitions; the rest "
            f"had expired by the time they closed them", kept)
    errors = Counter(r["err"][:80] for w in workers for r in w.recs() if r["kind"] == "error")
    print(f"  processors' on_error calls: {dict(errors) or 'none'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker(*sys.argv[2:6]))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
