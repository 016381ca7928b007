"""Start a throwaway `runnel serve` for a compat check.

    with Broker(["--num-partitions", "2"]) as b:
        ... b.bootstrap ...

The broker gets a temp data dir and `--listen 127.0.0.1:0`; the bootstrap address comes
from its ready line. On exit it gets SIGTERM and must stop within 30 s; on a failure the
tail of its stderr is printed.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READY = "runnel listening on "
LISTENER = "runnel listener "
AMQP = "runnel amqp on "
BLOB = "runnel blob on "
AMQPS = "runnel amqps on "


def runnel_bin():
    if os.environ.get("RUNNEL_BIN"):
        return os.environ["RUNNEL_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "debug", "runnel")


class Broker:
    def __init__(self, args=()):
        self.args = list(args)
        self.dir = None
        self.proc = None
        self.bootstrap = None

    def __enter__(self):
        binary = runnel_bin()
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"FAIL: broker binary {binary} missing (cargo build -p runnel)")
        self.dir = tempfile.mkdtemp(prefix="runnel-compat-")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        # The broker reads RUNNEL_* variables as settings: start it without any.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNEL_")}
        env.setdefault("RUST_LOG", "info")
        cmd = [binary, "serve", "--data-dir", os.path.join(self.dir, "data"),
               "--listen", "127.0.0.1:0", *self.args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(self.stderr_path, "wb"), env=env, text=True)
        lines = []
        got = threading.Event()
        self.listeners = {}
        self.amqp = None
        self.blob = None
        self.amqps = None
        listeners_done = threading.Event()
        amqp_seen = threading.Event()
        self._amqp_seen = amqp_seen
        blob_seen = threading.Event()
        self._blob_seen = blob_seen

        def read():
            for line in self.proc.stdout:
                if not lines:
                    lines.append(line)
                    got.set()
                elif line.startswith(LISTENER):
                    name, _, addr = line[len(LISTENER):].strip().partition(" on ")
                    self.listeners[name] = addr
                else:
                    if line.startswith(AMQP):
                        self.amqp = line[len(AMQP):].strip()
                        amqp_seen.set()
                    if line.startswith(AMQPS):
                        self.amqps = line[len(AMQPS):].strip()
                    if line.startswith(BLOB):
                        self.blob = line[len(BLOB):].strip()
                        blob_seen.set()
                    listeners_done.set()
            got.set()
            listeners_done.set()

        threading.Thread(target=read, daemon=True).start()
        if not got.wait(60) or not lines or not lines[0].startswith(READY):
            self._dump()
            self.proc.kill()
            raise SystemExit(f"FAIL: broker gave no ready line within 60 s (got {lines!r})")
        self.bootstrap = lines[0][len(READY):].strip()
        # The listener lines follow the ready line, before the metrics line.
        listeners_done.wait(10)
        print(f"broker pid {self.proc.pid} listening on {self.bootstrap} (data {self.dir})")
        return self

    def amqp_addr(self):
        """The Event Hubs AMQP endpoint's host:port (start with
        `--set eventhubs.amqp.listener=127.0.0.1:0`)."""
        if not self._amqp_seen.wait(10):
            raise SystemExit("FAIL: the broker printed no `runnel amqp on ADDR` line")
        return self.amqp

    def blob_addr(self):
        """The blob store's host:port (start with
        `--set eventhubs.blob.listener=127.0.0.1:0`)."""
        if not self._blob_seen.wait(10):
            raise SystemExit("FAIL: the broker printed no `runnel blob on ADDR` line")
        return self.blob

    def _dump(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                tail = f.readlines()[-60:]
            print(f"----- last lines of the broker's stderr ({self.stderr_path}) -----",
                  file=sys.stderr)
            sys.stderr.write("".join(tail))
        except OSError:
            pass

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print("FAIL: broker did not stop within 30 s of SIGTERM", file=sys.stderr)
                failed = True
                if exc_type is None:
                    self._dump()
                    raise SystemExit(1)
        else:
            print(f"FAIL: broker exited on its own with {self.proc.returncode}", file=sys.stderr)
            failed = True
            if exc_type is None:
                self._dump()
                raise SystemExit(1)
        if failed:
            self._dump()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Checks:
    """Counts and prints what was checked; `check(cond, what)` fails loudly."""

    def __init__(self, name):
        self.name = name
        self.n = 0

    def ok(self, what):
        self.n += 1
        print(f"  ok: {what}", flush=True)

    def check(self, cond, what, detail=""):
        if not cond:
            raise AssertionError(f"{self.name}: {what} {detail}")
        self.ok(what)

    def done(self):
        print(f"{self.name}: {self.n} checks passed")
