'use strict';
// Shared helpers for the JS compat checks: a step runner that prints `  ok: ...` per
// step like the other compat scripts and exits nonzero on the first failure, and small
// polling helpers. No test framework: each check is a plain script.

const assert = require('node:assert/strict');

function bootstrapFromArgs() {
  const bootstrap = process.argv[2];
  if (!bootstrap || !/^[^:]+:\d+$/.test(bootstrap)) {
    console.error(`usage: node ${process.argv[1]} HOST:PORT`);
    process.exit(2);
  }
  return bootstrap;
}

// Runs `main(step)`; `step(name, fn)` runs one named step and prints `ok:` when it
// passes. Any failure (or the whole check running past `deadlineMs`) exits 1.
function runCheck(label, deadlineMs, main) {
  let current = '(start)';
  let passed = 0;
  const timer = setTimeout(() => {
    console.error(`FAIL: ${label}: still running after ${deadlineMs / 1000} s (in step: ${current})`);
    process.exit(1);
  }, deadlineMs);
  const step = async (name, fn) => {
    current = name;
    const t0 = Date.now();
    const detail = await fn();
    passed += 1;
    console.log(`  ok: ${name}${detail ? `: ${detail}` : ''} (${Date.now() - t0} ms)`);
  };
  process.on('unhandledRejection', (err) => {
    console.error(`FAIL: ${label}: unhandled rejection in step "${current}":`, err);
    process.exit(1);
  });
  main(step).then(
    () => {
      clearTimeout(timer);
      console.log(`${label}: all ${passed} steps passed`);
      // Native clients may keep handles open for a moment; the verdict is in.
      process.exit(0);
    },
    (err) => {
      console.error(`FAIL: ${label}: step "${current}" failed:`);
      console.error(err && err.stack ? err.stack : err);
      if (err && err.cause) console.error('cause:', err.cause);
      process.exit(1);
    },
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`.
async function waitFor(what, fn, timeoutMs = 20000, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last && last.stack ? last.stack : JSON.stringify(last)})`);
    }
    await sleep(everyMs);
  }
}

// Awaits `promise` and requires it to reject; `match(err)` must hold for the error.
async function rejects(what, promise, match) {
  let err = null;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected an error, got success`);
  assert.ok(match(err), `${what}: unexpected error ${err && err.stack ? err.stack : err}`);
  return err;
}

const byPartition = (arr) => [...arr].sort((a, b) => a.partition - b.partition);

const str = (b) => (b === null || b === undefined ? b : b.toString());

// The records both checks produce: record i goes to partition i % 3 at offset
// floor(i / 3), with keys, a timestamp and headers (one repeated); `src` names the client.
const testRecord = (base, src) => (i) => ({
  key: `k${i}`,
  value: `v${i} ${'payload '.repeat(20)}`,
  timestamp: String(base + i),
  headers: { i: String(i), src, multi: ['a', 'b'] },
});

// Every record consumed is the one produced, whole: key, value, timestamp, headers. The
// record at partition 0, offset 100 is the empty-key null-value one.
function assertRecordsWhole(seen, record, src) {
  for (const { partition, offset, message } of seen) {
    if (partition === 0 && offset === 100) {
      assert.equal(str(message.key), '');
      assert.equal(message.value, null);
      continue;
    }
    const i = offset * 3 + partition;
    const want = record(i);
    assert.equal(str(message.key), want.key);
    assert.equal(str(message.value), want.value);
    assert.equal(message.timestamp, want.timestamp);
    assert.deepEqual(Object.keys(message.headers).sort(), ['i', 'multi', 'src']);
    assert.equal(str(message.headers.i), String(i));
    assert.equal(str(message.headers.src), src);
    assert.deepEqual(message.headers.multi.map(str), ['a', 'b']);
  }
}

module.exports = {
  assert, bootstrapFromArgs, runCheck, sleep, waitFor, rejects, byPartition, str, testRecord, assertRecordsWhole,
};
