// The JavaScript Event Hubs blob checkpoint store (@azure/eventhubs-checkpointstore-blob)
// and @azure/storage-blob's ContainerClient against runnel's blob store.
//
//   node blob_checkpoint_store_check.js ENDPOINT CONTAINER
//
// ENDPOINT is the blob endpoint with the account, e.g. http://127.0.0.1:10000/devstoreaccount1.
// Exits non-zero on the first failed expectation. blob/tests/js_clients.rs runs it (see run.sh).
"use strict";

const assert = require("node:assert/strict");
const { ContainerClient } = require("@azure/storage-blob");
const { BlobCheckpointStore } = require("@azure/eventhubs-checkpointstore-blob");

const DEV_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const NS = "runnel.servicebus.windows.net";
const HUB = "Hub1";
const CG = "$Default";

function connStr(endpoint, key = DEV_KEY) {
  return (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
    `AccountKey=${key};BlobEndpoint=${endpoint};`
  );
}

function ok(what) {
  console.log(`  ok: ${what}`);
}

async function rejects(promise, status, code, what) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.statusCode, status, `${what}: status ${e.statusCode} (${e.message})`);
    if (code) assert.equal(e.code, code, `${what}: code ${e.code}`);
    ok(`${what}: ${status} ${code ?? ""}`);
    return;
  }
  assert.fail(`${what}: succeeded`);
}

function ownership(partitionId, ownerId, etag) {
  return { fullyQualifiedNamespace: NS, eventHubName: HUB, consumerGroup: CG, partitionId, ownerId, etag };
}

function checkpoint(partitionId, offset, sequenceNumber) {
  return { fullyQualifiedNamespace: NS, eventHubName: HUB, consumerGroup: CG, partitionId, offset, sequenceNumber };
}

async function main() {
  const [endpoint, container] = process.argv.slice(2);
  if (!endpoint || !container) {
    console.error("usage: node blob_checkpoint_store_check.js ENDPOINT CONTAINER");
    process.exit(2);
  }
  const cc = new ContainerClient(connStr(endpoint), container);
  await cc.create();
  ok("ContainerClient.create");
  await rejects(cc.create(), 409, "ContainerAlreadyExists", "a second create");
  assert.equal(await cc.exists(), true);
  ok("the container exists");

  const store = new BlobCheckpointStore(cc);
  assert.deepEqual(await store.listOwnership(NS, HUB, CG), []);
  ok("no ownership at first");

  // A new claim: Set Blob Metadata 404s (BlobNotFound), then Put Blob.
  const [a0] = await store.claimOwnership([ownership("0", "owner-a")]);
  assert.ok(a0 && a0.etag, "owner-a's claim has an etag");
  assert.equal(typeof a0.lastModifiedTimeInMs, "number");
  ok(`owner-a claimed partition 0, etag ${a0.etag}`);
  const staleEtag = a0.etag;
  const [b0] = await store.claimOwnership([ownership("0", "owner-b", a0.etag)]);
  assert.ok(b0 && b0.etag !== staleEtag, "owner-b took partition 0 with the current etag");
  ok("owner-b took partition 0 with the current etag");
  assert.deepEqual(await store.claimOwnership([ownership("0", "owner-a", staleEtag)]), []);
  ok("a claim with a stale etag gets nothing (412)");
  const [a1] = await store.claimOwnership([ownership("1", "owner-a")]);

  const owned = (await store.listOwnership(NS, HUB, CG)).sort((x, y) => x.partitionId.localeCompare(y.partitionId));
  assert.deepEqual(
    owned.map((o) => [o.partitionId, o.ownerId, o.etag]),
    [
      // Azure lists ETags unquoted and sends them quoted in headers.
      ["0", "owner-b", b0.etag.replace(/"/g, "")],
      ["1", "owner-a", a1.etag.replace(/"/g, "")],
    ],
  );
  assert.ok(owned.every((o) => typeof o.lastModifiedTimeInMs === "number" && o.lastModifiedTimeInMs > 0));
  ok("listOwnership: partitions, owners, etags and last-modified times");
  const [b0r] = await store.claimOwnership([ownership("0", "owner-b", owned[0].etag)]);
  assert.ok(b0r && b0r.etag !== b0.etag);
  ok("a claim with the listed etag succeeds");

  assert.deepEqual(await store.listCheckpoints(NS, HUB, CG), []);
  await store.updateCheckpoint(checkpoint("0", "100", 42));
  await store.updateCheckpoint(checkpoint("1", "7", 3));
  await store.updateCheckpoint(checkpoint("0", "200", 43));
  const cps = (await store.listCheckpoints(NS, HUB, CG)).sort((x, y) => x.partitionId.localeCompare(y.partitionId));
  assert.deepEqual(
    cps.map((c) => [c.partitionId, c.offset, c.sequenceNumber]),
    [
      ["0", "200", 43],
      ["1", "7", 3],
    ],
  );
  ok("listCheckpoints returns the latest checkpoints");

  const props = await cc.getBlobClient(`${NS}/${HUB}/${CG}/checkpoint/0`.toLowerCase()).getProperties();
  assert.deepEqual(props.metadata, { offset: "200", sequencenumber: "43" });
  assert.ok(props.etag && props.lastModified instanceof Date);
  ok("getProperties: metadata, etag and last-modified");

  const bad = Buffer.from("not the account key, 32 bytes!!!").toString("base64");
  const wrong = new ContainerClient(connStr(endpoint, bad), container);
  await rejects(wrong.getProperties(), 403, null, "the wrong key");
  await rejects(wrong.create(), 403, "AuthenticationFailed", "create with the wrong key");

  console.log("js blob checkpoint store: passed");
}

main().catch((e) => {
  console.error("FAIL:", e);
  process.exit(1);
});
