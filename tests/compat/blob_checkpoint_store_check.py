"""The Python Event Hubs blob checkpoint stores (azure-eventhub-checkpointstoreblob and its
-aio twin, each with its vendored blob client) and azure-storage-blob against Runnel's
blob store.

    python blob_checkpoint_store_check.py ENDPOINT CONTAINER [MODE]

ENDPOINT is the blob endpoint with the account, e.g. http://127.0.0.1:10000/devstoreaccount1.
MODE is one of:
  full        (default) container creation, ownership claims (new, stale etag, taken),
              list_ownership, update_checkpoint, list_checkpoints, blob properties,
              content round trip and paged listing
  wrong-key   a client with another account key gets 403 AuthenticationFailed
  aio         the same claims and checkpoints with azure-eventhub-checkpointstoreblob-aio
              (aiohttp underneath)
  race        8 stores claim one partition at once, then steal it with one etag at once:
              exactly one wins each time
  write       creates CONTAINER and writes one checkpoint (partition 3: offset 777, sequence 55)
  read        list_checkpoints returns exactly that checkpoint
Exits non-zero on the first failed expectation. blob/tests/python_clients.rs runs it.
"""

import base64
import sys
from concurrent.futures import ThreadPoolExecutor

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from azure.storage.blob import BlobServiceClient

DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
NS = "runnel.servicebus.windows.net"
HUB = "Hub1"
CG = "$Default"


def conn_str(endpoint, key=DEV_KEY):
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint={endpoint};"
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def ownership(partition, owner, etag=None):
    o = {
        "fully_qualified_namespace": NS,
        "eventhub_name": HUB,
        "consumer_group": CG,
        "partition_id": partition,
        "owner_id": owner,
    }
    if etag is not None:
        o["etag"] = etag
    return o


def checkpoint(partition, offset, seq):
    return {
        "fully_qualified_namespace": NS,
        "eventhub_name": HUB,
        "consumer_group": CG,
        "partition_id": partition,
        "offset": offset,
        "sequence_number": seq,
    }


def create_container(endpoint, container):
    service = BlobServiceClient.from_connection_string(conn_str(endpoint))
    service.create_container(container)
    return service


def full(endpoint, container):
    service = create_container(endpoint, container)
    print("  ok: create_container")
    try:
        service.create_container(container)
        raise AssertionError("a second create_container succeeded")
    except ResourceExistsError as e:
        check(e.error_code == "ContainerAlreadyExists", f"second create: 409 {e.error_code}")
    cc = service.get_container_client(container)
    check(cc.exists(), "container exists (Get Container Properties)")
    check(not service.get_container_client("no-such-container").exists(), "another container does not")

    store = BlobCheckpointStore.from_connection_string(conn_str(endpoint), container)
    check(list(store.list_ownership(NS, HUB, CG)) == [], "no ownership at first")

    # A new claim: Set Blob Metadata 404s, then Put Blob with If-None-Match: *.
    [a0] = store.claim_ownership([ownership("0", "owner-a")])
    check(a0["owner_id"] == "owner-a" and a0["etag"], f"owner-a claimed partition 0, etag {a0['etag']}")
    check(isinstance(a0["last_modified_time"], float), "the claim has a last-modified time")
    [a1] = store.claim_ownership([ownership("1", "owner-a")])

    # A fresh claim (no etag) on a claimed partition loses.
    check(store.claim_ownership([ownership("0", "owner-c")]) == [], "a claim without etag on an owned partition fails")

    # owner-b steals partition 0 with the current etag; owner-a's etag is then stale.
    [b0] = store.claim_ownership([ownership("0", "owner-b", a0["etag"])])
    check(b0["etag"] != a0["etag"], "stealing with the current etag succeeds and changes the etag")
    check(store.claim_ownership([ownership("0", "owner-a", a0["etag"])]) == [], "a claim with a stale etag fails")
    # Renewal with the current etag.
    [a1r] = store.claim_ownership([ownership("1", "owner-a", a1["etag"])])
    check(a1r["etag"] != a1["etag"], "owner-a renews partition 1")

    owned = sorted(store.list_ownership(NS, HUB, CG), key=lambda o: o["partition_id"])
    check([o["partition_id"] for o in owned] == ["0", "1"], "list_ownership lists partitions 0 and 1")
    check([o["owner_id"] for o in owned] == ["owner-b", "owner-a"], "with their owners")
    # Azure lists ETags unquoted and sends them quoted in headers.
    check(
        [o["etag"] for o in owned] == [b0["etag"].strip('"'), a1r["etag"].strip('"')],
        f"and the etags the claims returned (unquoted): {[o['etag'] for o in owned]}",
    )
    check(all(isinstance(o["last_modified_time"], float) for o in owned), "and last-modified times")
    # The listed etag works for the next claim.
    [b0r] = store.claim_ownership([ownership("0", "owner-b", owned[0]["etag"])])
    check(b0r["etag"] != b0["etag"], "a claim with the listed etag succeeds")

    check(list(store.list_checkpoints(NS, HUB, CG)) == [], "no checkpoints at first")
    store.update_checkpoint(checkpoint("0", "100", 42))
    store.update_checkpoint(checkpoint("1", "7", 3))
    store.update_checkpoint(checkpoint("0", "200", 43))
    cps = sorted(store.list_checkpoints(NS, HUB, CG), key=lambda c: c["partition_id"])
    got = [(c["partition_id"], c["offset"], c["sequence_number"]) for c in cps]
    check(got == [("0", "200", 43), ("1", "7", 3)], f"list_checkpoints returns the latest: {got}")
    # Ownership and checkpoints do not mix.
    check(len(list(store.list_ownership(NS, HUB, CG))) == 2, "ownership still lists two")
    check(list(store.list_checkpoints(NS, HUB, "other")) == [], "another consumer group has none")

    # The blobs as azure-storage-blob sees them.
    name = f"{NS}/{HUB}/{CG}/checkpoint/0".lower()
    props = cc.get_blob_client(name).get_blob_properties()
    check(props.metadata == {"offset": "200", "sequencenumber": "43"}, f"Get Blob Properties metadata {props.metadata}")
    check(props.size == 0 and props.blob_type == "BlockBlob", "an empty block blob")
    check(props.last_modified is not None and props.etag, "with Last-Modified and ETag")
    try:
        cc.get_blob_client("missing").get_blob_properties()
        raise AssertionError("properties of a missing blob")
    except ResourceNotFoundError as e:
        check(e.status_code == 404, "a missing blob is 404")
    try:
        cc.get_blob_client("missing").set_blob_metadata({"a": "b"})
        raise AssertionError("set metadata on a missing blob")
    except ResourceNotFoundError as e:
        check(e.error_code == "BlobNotFound", "Set Blob Metadata on a missing blob: BlobNotFound")

    # Content, conditional Put Blob and metadata names in mixed case.
    bc = cc.get_blob_client("dir/data.bin")
    payload = bytes(range(256)) * 40
    up = bc.upload_blob(payload, metadata={"MixedCase": "v"})
    check(bc.download_blob().readall() == payload, "content round trip (Put Blob, Get Blob)")
    check(bc.get_blob_properties().metadata.get("mixedcase") == "v", "metadata names are case-insensitive")
    try:
        bc.upload_blob(b"x", overwrite=False)
        raise AssertionError("overwrite=False replaced a blob")
    except ResourceExistsError as e:
        check(e.error_code == "BlobAlreadyExists", "If-None-Match: * on an existing blob: 409 BlobAlreadyExists")
    try:
        bc.upload_blob(b"x", overwrite=True, etag='"0x1"', match_condition=MatchConditions.IfNotModified)
        raise AssertionError("a Put Blob with a wrong If-Match succeeded")
    except HttpResponseError as e:
        check(e.status_code == 412 and e.error_code == "ConditionNotMet", "If-Match with a wrong etag: 412 ConditionNotMet")
    bc.upload_blob(b"y", overwrite=True, etag=up["etag"], match_condition=MatchConditions.IfNotModified)
    check(bc.download_blob().readall() == b"y", "If-Match with the current etag replaces the blob")

    # Paged listing (maxresults and NextMarker).
    for i in range(5):
        cc.get_blob_client(f"page/{i}").upload_blob(b"")
    pages = list(cc.list_blobs(name_starts_with="page/", results_per_page=2).by_page())
    names = [[b.name for b in p] for p in pages]
    check(names == [["page/0", "page/1"], ["page/2", "page/3"], ["page/4"]], f"pages of two: {names}")

    bc.delete_blob()
    check(not bc.exists(), "Delete Blob")


def aio(endpoint, container):
    import asyncio

    from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore as AioStore

    create_container(endpoint, container)

    async def run():
        async with AioStore.from_connection_string(conn_str(endpoint), container) as store:
            check(list(await store.list_ownership(NS, HUB, CG)) == [], "aio: no ownership at first")
            [a0] = await store.claim_ownership([ownership("0", "owner-a")])
            check(a0["etag"], f"aio: owner-a claimed partition 0, etag {a0['etag']}")
            check(await store.claim_ownership([ownership("0", "owner-c")]) == [], "aio: a claim without etag fails")
            [b0] = await store.claim_ownership([ownership("0", "owner-b", a0["etag"])])
            check(b0["etag"] != a0["etag"], "aio: stealing with the current etag succeeds")
            stale = await store.claim_ownership([ownership("0", "owner-a", a0["etag"])])
            check(stale == [], "aio: a claim with a stale etag fails")
            owned = list(await store.list_ownership(NS, HUB, CG))
            check([(o["partition_id"], o["owner_id"]) for o in owned] == [("0", "owner-b")], "aio: list_ownership")
            await store.update_checkpoint(checkpoint("0", "100", 42))
            await store.update_checkpoint(checkpoint("0", "200", 43))
            cps = [(c["partition_id"], c["offset"], c["sequence_number"]) for c in await store.list_checkpoints(NS, HUB, CG)]
            check(cps == [("0", "200", 43)], f"aio: list_checkpoints returns the latest: {cps}")

    asyncio.run(run())


def race(endpoint, container):
    create_container(endpoint, container)
    stores = [BlobCheckpointStore.from_connection_string(conn_str(endpoint), container) for _ in range(8)]
    with ThreadPoolExecutor(len(stores)) as pool:
        won = list(pool.map(lambda i: stores[i].claim_ownership([ownership("9", f"owner-{i}")]), range(len(stores))))
        winners = [w[0] for w in won if w]
        check(len(winners) == 1, f"one of {len(stores)} new claims wins: {[w['owner_id'] for w in winners]}")
        etag = winners[0]["etag"]
        won = list(
            pool.map(lambda i: stores[i].claim_ownership([ownership("9", f"thief-{i}", etag)]), range(len(stores)))
        )
        thieves = [w[0] for w in won if w]
        check(len(thieves) == 1, f"one of {len(stores)} claims with the same etag wins: {[w['owner_id'] for w in thieves]}")
    [listed] = stores[0].list_ownership(NS, HUB, CG)
    check(listed["owner_id"] == thieves[0]["owner_id"], f"the winner owns it: {listed['owner_id']}")


def wrong_key(endpoint, container):
    bad = base64.b64encode(b"not the account key, 32 bytes!!!").decode()
    service = BlobServiceClient.from_connection_string(conn_str(endpoint, bad))
    try:
        service.create_container(container)
        raise AssertionError("a request signed with the wrong key succeeded")
    except (ClientAuthenticationError, HttpResponseError) as e:
        check(e.status_code == 403, f"wrong key: status {e.status_code}")
        check(e.error_code == "AuthenticationFailed", f"wrong key: error code {e.error_code}")
    store = BlobCheckpointStore.from_connection_string(conn_str(endpoint, bad), container)
    try:
        store.list_checkpoints(NS, HUB, CG)
        raise AssertionError("list_checkpoints with the wrong key succeeded")
    except HttpResponseError as e:
        check(e.status_code == 403, "the checkpoint store with the wrong key: 403")


def write(endpoint, container):
    create_container(endpoint, container)
    store = BlobCheckpointStore.from_connection_string(conn_str(endpoint), container)
    store.update_checkpoint(checkpoint("3", "777", 55))
    print("  ok: checkpoint written")


def read(endpoint, container):
    store = BlobCheckpointStore.from_connection_string(conn_str(endpoint), container)
    cps = list(store.list_checkpoints(NS, HUB, CG))
    got = [(c["partition_id"], c["offset"], c["sequence_number"]) for c in cps]
    check(got == [("3", "777", 55)], f"the checkpoint is back: {got}")


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    endpoint, container = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) == 4 else "full"
    {"full": full, "aio": aio, "race": race, "wrong-key": wrong_key, "write": write, "read": read}[mode](endpoint, container)
    print(f"blob checkpoint store ({mode}): passed")


if __name__ == "__main__":
    main()
