package runnel.compat;

import com.azure.messaging.eventhubs.checkpointstore.blob.BlobCheckpointStore;
import com.azure.messaging.eventhubs.models.Checkpoint;
import com.azure.messaging.eventhubs.models.PartitionOwnership;
import com.azure.storage.blob.BlobContainerAsyncClient;
import com.azure.storage.blob.BlobContainerClientBuilder;
import com.azure.storage.blob.models.BlobStorageException;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The Java Event Hubs blob checkpoint store (azure-messaging-eventhubs-checkpointstore-blob)
 * against runnel's blob store.
 *
 * <pre>java -cp ... runnel.compat.BlobCheckpointStoreCheck ENDPOINT CONTAINER</pre>
 *
 * ENDPOINT is the blob endpoint with the account, e.g. http://127.0.0.1:10000/devstoreaccount1.
 * Exits non-zero on the first failed expectation; blob/tests/java_clients.rs runs it.
 */
public final class BlobCheckpointStoreCheck {
  private static final String DEV_KEY =
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
  private static final String NS = "runnel.servicebus.windows.net";
  private static final String HUB = "Hub1";
  private static final String CG = "$Default";

  private BlobCheckpointStoreCheck() {}

  private static String connStr(String endpoint, String key) {
    return "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + key
        + ";BlobEndpoint="
        + endpoint
        + ";";
  }

  private static void check(boolean cond, String what) {
    if (!cond) {
      throw new AssertionError("FAILED: " + what);
    }
    System.out.println("  ok: " + what);
  }

  private static PartitionOwnership ownership(String partition, String owner, String etag) {
    return new PartitionOwnership()
        .setFullyQualifiedNamespace(NS)
        .setEventHubName(HUB)
        .setConsumerGroup(CG)
        .setPartitionId(partition)
        .setOwnerId(owner)
        .setETag(etag);
  }

  private static Checkpoint checkpoint(String partition, String offset, long seq) {
    return new Checkpoint()
        .setFullyQualifiedNamespace(NS)
        .setEventHubName(HUB)
        .setConsumerGroup(CG)
        .setPartitionId(partition)
        .setOffsetString(offset)
        .setSequenceNumber(seq);
  }

  private static List<PartitionOwnership> claim(BlobCheckpointStore store, PartitionOwnership o) {
    List<PartitionOwnership> got = store.claimOwnership(List.of(o)).collectList().block();
    return Objects.requireNonNull(got);
  }

  public static void main(String[] args) {
    if (args.length != 2) {
      System.err.println("usage: BlobCheckpointStoreCheck ENDPOINT CONTAINER");
      System.exit(2);
    }
    String endpoint = args[0];
    String container = args[1];
    BlobContainerAsyncClient cc =
        new BlobContainerClientBuilder()
            .connectionString(connStr(endpoint, DEV_KEY))
            .containerName(container)
            .buildAsyncClient();
    cc.create().block();
    check(Boolean.TRUE.equals(cc.exists().block()), "container created");
    try {
      cc.create().block();
      throw new AssertionError("a second create succeeded");
    } catch (BlobStorageException e) {
      check(e.getStatusCode() == 409, "a second create: " + e.getErrorCode());
    }

    BlobCheckpointStore store = new BlobCheckpointStore(cc);
    check(
        Objects.requireNonNull(store.listOwnership(NS, HUB, CG).collectList().block()).isEmpty(),
        "no ownership at first");
    // A new claim is Put Blob with If-None-Match: *.
    List<PartitionOwnership> a0 = claim(store, ownership("0", "owner-a", null));
    check(a0.size() == 1 && a0.get(0).getETag() != null, "owner-a claimed partition 0");
    String stale = a0.get(0).getETag();
    check(claim(store, ownership("0", "owner-c", null)).isEmpty(), "a new claim on an owned partition fails (409)");
    List<PartitionOwnership> b0 = claim(store, ownership("0", "owner-b", stale));
    check(b0.size() == 1 && !stale.equals(b0.get(0).getETag()), "owner-b takes partition 0 with the current etag");
    check(claim(store, ownership("0", "owner-a", stale)).isEmpty(), "a claim with a stale etag fails (412)");
    List<PartitionOwnership> a1 = claim(store, ownership("1", "owner-a", null));

    List<PartitionOwnership> owned =
        Objects.requireNonNull(store.listOwnership(NS, HUB, CG).collectList().block());
    owned.sort(Comparator.comparing(PartitionOwnership::getPartitionId));
    check(owned.size() == 2, "listOwnership lists two");
    check(
        owned.get(0).getOwnerId().equals("owner-b") && owned.get(1).getOwnerId().equals("owner-a"),
        "with their owners");
    check(
        owned.get(0).getETag().equals(b0.get(0).getETag())
            && owned.get(1).getETag().equals(a1.get(0).getETag()),
        "and the etags the claims returned: listed "
            + owned.get(0).getETag()
            + ", "
            + owned.get(1).getETag()
            + "; claimed "
            + b0.get(0).getETag()
            + ", "
            + a1.get(0).getETag());
    check(owned.get(0).getLastModifiedTime() != null && owned.get(0).getLastModifiedTime() > 0, "and last-modified times");
    check(claim(store, ownership("0", "owner-b", owned.get(0).getETag())).size() == 1, "a claim with the listed etag succeeds");

    store.updateCheckpoint(checkpoint("0", "100", 42)).block();
    store.updateCheckpoint(checkpoint("1", "7", 3)).block();
    store.updateCheckpoint(checkpoint("0", "200", 43)).block();
    List<Checkpoint> cps = Objects.requireNonNull(store.listCheckpoints(NS, HUB, CG).collectList().block());
    cps.sort(Comparator.comparing(Checkpoint::getPartitionId));
    check(cps.size() == 2, "listCheckpoints lists two");
    check(
        cps.get(0).getOffsetString().equals("200") && cps.get(0).getSequenceNumber() == 43,
        "partition 0 at offset 200, sequence 43");
    check(
        cps.get(1).getOffsetString().equals("7") && cps.get(1).getSequenceNumber() == 3,
        "partition 1 at offset 7, sequence 3");
    // The Java store keeps the names' case (Python and JS lowercase them).
    Map<String, String> md =
        Objects.requireNonNull(
                cc.getBlobAsyncClient(NS + "/" + HUB + "/" + CG + "/checkpoint/0")
                    .getProperties()
                    .block())
            .getMetadata();
    check(md.equals(Map.of("offset", "200", "sequencenumber", "43")), "the checkpoint blob's metadata " + md);

    String bad = Base64.getEncoder().encodeToString("not the account key, 32 bytes!!!".getBytes());
    BlobContainerAsyncClient wrong =
        new BlobContainerClientBuilder()
            .connectionString(connStr(endpoint, bad))
            .containerName(container)
            .buildAsyncClient();
    try {
      wrong.create().block();
      throw new AssertionError("the wrong key succeeded");
    } catch (BlobStorageException e) {
      check(e.getStatusCode() == 403 && "AuthenticationFailed".equals(e.getErrorCode().toString()), "the wrong key: 403 AuthenticationFailed");
    }
    System.out.println("java blob checkpoint store: passed");
    System.exit(0);
  }
}
