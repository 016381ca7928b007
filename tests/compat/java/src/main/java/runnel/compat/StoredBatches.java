package runnel.compat;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.FetchRequest;
import org.apache.kafka.common.requests.FetchResponse;
import org.apache.kafka.common.requests.RequestHeader;

/**
 * The record batches of a partition as the broker stored them, read with plain Fetch v12
 * requests (topic names, no session) on one socket. The consumer API hides what this is
 * for: the producer id, epoch and sequence numbers that an idempotent producer stamped on
 * each batch. Uses kafka-clients' request classes (internal API, pinned by the pom).
 */
final class StoredBatches {
    private static final short VERSION = 12;
    private static final int MAX_RESPONSE = 64 << 20;

    private StoredBatches() {}

    /** The batches of `tp` from offset 0 up to `end` (exclusive). */
    static List<RecordBatch> read(String bootstrap, TopicPartition tp, long end) throws IOException {
        String first = bootstrap.split(",")[0].trim();
        int colon = first.lastIndexOf(':');
        InetSocketAddress addr = new InetSocketAddress(first.substring(0, colon),
                Integer.parseInt(first.substring(colon + 1)));
        List<RecordBatch> batches = new ArrayList<>();
        try (Socket s = new Socket()) {
            s.connect(addr, 10_000);
            s.setSoTimeout(30_000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            long next = 0;
            int correlation = 0;
            while (next < end) {
                FetchRequest req = FetchRequest.Builder.forConsumer(VERSION, 0, 0, Map.of(tp,
                        new FetchRequest.PartitionData(Uuid.ZERO_UUID, next, -1L, 1 << 20, Optional.empty())))
                        .build(VERSION);
                RequestHeader header = new RequestHeader(ApiKeys.FETCH, VERSION, "compat-java-stored-batches",
                        ++correlation);
                ByteBuffer buf = req.serializeWithHeader(header);
                byte[] bytes = new byte[buf.remaining()];
                buf.get(bytes);
                out.writeInt(bytes.length);
                out.write(bytes);
                out.flush();
                int len = in.readInt();
                if (len < 0 || len > MAX_RESPONSE) {
                    throw Checks.fail("raw fetch of " + tp + ": response size " + len);
                }
                byte[] resp = new byte[len];
                in.readFully(resp);
                FetchResponse fr = (FetchResponse) AbstractResponse.parseResponse(ByteBuffer.wrap(resp), header);
                if (fr.data().responses().size() != 1 || fr.data().responses().get(0).partitions().size() != 1) {
                    throw Checks.fail("raw fetch of " + tp + ": not one partition in " + fr.data());
                }
                FetchResponseData.PartitionData pd = fr.data().responses().get(0).partitions().get(0);
                if (pd.errorCode() != 0) {
                    throw Checks.fail("raw fetch of " + tp + "@" + next + ": " + Errors.forCode(pd.errorCode()));
                }
                long before = next;
                for (RecordBatch b : ((MemoryRecords) pd.records()).batches()) {
                    // A fetch may start inside a batch, or end with a partial one (not returned).
                    if (b.lastOffset() >= next) {
                        batches.add(b);
                        next = b.nextOffset();
                    }
                }
                if (next == before) {
                    throw Checks.fail("raw fetch of " + tp + "@" + next + ": no batch (high watermark "
                            + pd.highWatermark() + ", want up to " + end + ")");
                }
            }
        }
        return batches;
    }
}
