package main

// segmentio/kafka-go: the Writer, the Reader (by partition and in a consumer group), the
// low-level Conn, and the Client's request API. kafka-go has no idempotent producer and
// no KIP-848 (group.protocol=consumer) consumer.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

func kafkaGoCheck(bootstrap string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Its own transport with a short metadata TTL, so that Metadata follows the calls
	// before it (the shared default transport caches metadata for 6 s).
	client := &kafka.Client{Addr: kafka.TCP(bootstrap), Timeout: 20 * time.Second, Transport: &kafka.Transport{MetadataTTL: 50 * time.Millisecond}}

	// --- cluster ------------------------------------------------------------------------
	av, err := client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	must(err, "ApiVersions")
	must(av.Error, "ApiVersions")
	names := map[string]int{}
	for _, k := range av.ApiKeys {
		names[k.ApiName] = k.MaxVersion
	}
	expect(names["Produce"] >= 3 && names["Fetch"] >= 4 && names["JoinGroup"] > 0, "ApiVersions: %v", names)
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	must(err, "Metadata")
	expect(len(meta.Brokers) == 1 && strconv.Itoa(meta.Brokers[0].Port) == portOf(bootstrap) && meta.Controller.ID == meta.Brokers[0].ID,
		"Metadata: brokers %+v controller %+v, want one at %s that is the controller", meta.Brokers, meta.Controller, bootstrap)
	node := meta.Brokers[0].ID
	ok("Client ApiVersions (Produce up to v%d) and Metadata: one broker, node %d, the controller", names["Produce"], node)

	// --- topics and configs ---------------------------------------------------------------
	topic := unique("kafkago-events")
	ct, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "86400000"}},
	}}})
	must(err, "CreateTopics")
	must(ct.Errors[topic], "CreateTopics "+topic)
	ct, err = client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 3, ReplicationFactor: 1}}})
	must(err, "CreateTopics (again)")
	expect(errors.Is(ct.Errors[topic], kafka.TopicAlreadyExists), "CreateTopics of an existing topic: %v, want TOPIC_ALREADY_EXISTS", ct.Errors[topic])
	ok("Client CreateTopics: %s with 3 partitions and retention.ms; again: TOPIC_ALREADY_EXISTS", topic)

	tmeta := kafkaGoTopic(ctx, client, topic)
	expect(len(tmeta.Partitions) == 3, "Metadata %s: %d partitions, want 3", topic, len(tmeta.Partitions))
	for _, p := range tmeta.Partitions {
		expect(p.Error == nil && p.Leader.ID == node && len(p.Replicas) == 1 && len(p.Isr) == 1 && p.Replicas[0].ID == node,
			"Metadata %s/%d: leader %d replicas %v isr %v err %v", topic, p.ID, p.Leader.ID, p.Replicas, p.Isr, p.Error)
	}
	ok("Client Metadata: %s has 3 partitions, each led by node %d", topic, node)

	describe := func(name string) kafka.DescribeConfigResponseConfigEntry {
		dc, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name}}}})
		must(err, "DescribeConfigs")
		expect(len(dc.Resources) == 1, "DescribeConfigs: %d resources", len(dc.Resources))
		must(dc.Resources[0].Error, "DescribeConfigs "+topic)
		for _, e := range dc.Resources[0].ConfigEntries {
			if e.ConfigName == name {
				return e
			}
		}
		fail("DescribeConfigs %s: no %s in %+v", topic, name, dc.Resources[0].ConfigEntries)
		return kafka.DescribeConfigResponseConfigEntry{}
	}
	// cfg describes config name, waiting (see settle) for value if given.
	cfg := func(name string, value ...string) kafka.DescribeConfigResponseConfigEntry {
		return settle(func() kafka.DescribeConfigResponseConfigEntry { return describe(name) },
			func(e kafka.DescribeConfigResponseConfigEntry) bool {
				return len(value) == 0 || e.ConfigValue == value[0]
			})
	}
	const dynamicTopicConfig = 1 // DescribeConfigs' config source
	e := cfg("retention.ms")
	expect(e.ConfigValue == "86400000" && e.ConfigSource == dynamicTopicConfig && !e.IsDefault, "DescribeConfigs retention.ms: %+v", e)
	e = cfg("cleanup.policy")
	expect(e.ConfigValue == "delete" && e.ConfigSource != dynamicTopicConfig, "DescribeConfigs cleanup.policy: %+v", e)
	ok("Client DescribeConfigs: retention.ms=86400000 (dynamic topic config), cleanup.policy=delete (default)")

	ia, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: []kafka.IncrementalAlterConfigsRequestConfig{
			{Name: "max.message.bytes", Value: "2000000", ConfigOperation: kafka.ConfigOperationSet},
			{Name: "retention.ms", ConfigOperation: kafka.ConfigOperationDelete},
		}}}})
	must(err, "IncrementalAlterConfigs")
	expect(len(ia.Resources) == 1 && ia.Resources[0].Error == nil, "IncrementalAlterConfigs: %+v", ia.Resources)
	expect(cfg("max.message.bytes", "2000000").ConfigValue == "2000000", "max.message.bytes not set to 2000000")
	e = cfg("retention.ms", "604800000")
	expect(e.ConfigValue == "604800000" && e.ConfigSource != dynamicTopicConfig, "retention.ms after delete: %+v, want the default", e)
	ac, err := client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: []kafka.AlterConfigRequestConfig{{Name: "retention.ms", Value: "7200000"}}}}})
	must(err, "AlterConfigs")
	for r, err := range ac.Errors {
		must(err, "AlterConfigs "+r.Name)
	}
	expect(cfg("retention.ms", "7200000").ConfigValue == "7200000", "AlterConfigs: retention.ms not 7200000")
	e = cfg("max.message.bytes", "1048588")
	expect(e.ConfigValue == "1048588" && e.ConfigSource != dynamicTopicConfig, "after AlterConfigs (replaces all) max.message.bytes: %+v", e)
	ia, err = client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: []kafka.IncrementalAlterConfigsRequestConfig{
			{Name: "retention.ms", Value: "soon", ConfigOperation: kafka.ConfigOperationSet}}}}})
	must(err, "IncrementalAlterConfigs (bad)")
	expect(len(ia.Resources) == 1 && errors.Is(ia.Resources[0].Error, kafka.InvalidConfiguration), "IncrementalAlterConfigs retention.ms=soon: %+v, want INVALID_CONFIG", ia.Resources)
	ok("Client IncrementalAlterConfigs (set, delete; a bad value: INVALID_CONFIG) and AlterConfigs (replaces the set)")

	// --- the default Writer: round-robin, acks=0 (RequireNone), no compression ----------------
	const n = 300
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{
			Key:     []byte(fmt.Sprintf("key-%d", i)),
			Value:   compressible(i),
			Headers: []kafka.Header{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "client", Value: []byte("kafka-go")}},
			Time:    base.Add(time.Duration(i) * time.Second),
		})
	}
	w := &kafka.Writer{Addr: kafka.TCP(bootstrap), Topic: topic}
	must(w.WriteMessages(ctx, msgs...), "Writer.WriteMessages (default Writer)")
	must(w.Close(), "Writer.Close")
	// acks=0 has no answer: wait for the end offsets to cover everything.
	ends := map[int]int64{}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ends = kafkaGoOffsets(ctx, client, topic, 3, false)
		if ends[0]+ends[1]+ends[2] >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(ends[0] == n/3 && ends[1] == n/3 && ends[2] == n/3, "after the default Writer (round robin, acks=0): end offsets %v, want %d each", ends, n/3)
	ok("default Writer (round robin, RequireNone = acks 0, no compression): %d messages with keys, headers and timestamps, %d per partition", n, n/3)

	// Read everything back with a partition Reader each.
	var want []sent
	byKey := map[string]kafka.Message{}
	for p := 0; p < 3; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: p, MaxWait: 500 * time.Millisecond})
		must(r.SetOffset(kafka.FirstOffset), "Reader.SetOffset")
		for i := int64(0); i < ends[p]; i++ {
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			m, err := r.ReadMessage(rctx)
			rcancel()
			must(err, fmt.Sprintf("Reader.ReadMessage %s/%d", topic, p))
			expect(m.Offset == i && m.Partition == p, "partition reader %d: message at %d/%d, want %d", p, m.Partition, m.Offset, i)
			byKey[string(m.Key)] = m
			want = append(want, sent{key: string(m.Key), partition: int32(p), offset: m.Offset})
		}
		must(r.Close(), "Reader.Close")
	}
	for i, s := range msgs {
		m, found := byKey[string(s.Key)]
		expect(found, "key %s not read back", s.Key)
		expect(bytes.Equal(m.Value, s.Value) && m.Time.Equal(s.Time) && len(m.Headers) == 2 &&
			m.Headers[0].Key == "i" && string(m.Headers[0].Value) == strconv.Itoa(i) && m.Headers[1].Key == "client" && string(m.Headers[1].Value) == "kafka-go",
			"key %s: read %q at %v headers %v, sent %q at %v", s.Key, m.Value, m.Time, m.Headers, s.Value, s.Time)
		expect(m.Partition == i%3, "key %s: partition %d, want %d (round robin)", s.Key, m.Partition, i%3)
	}
	ok("partition Readers: all %d back with keys, values, headers, timestamps, offsets 0..%d per partition", n, n/3-1)

	codecTopic, codecs, codecEnds := kafkaGoCodecs(ctx, bootstrap, client)
	kafkaGoConn(ctx, bootstrap)

	// --- list offsets ---------------------------------------------------------------------
	at := msgs[150].Time
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {
		kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0), kafka.TimeOffsetOf(1, at)}}})
	must(err, "ListOffsets")
	for _, po := range lo.Topics[topic] {
		must(po.Error, "ListOffsets")
		switch po.Partition {
		case 0:
			expect(po.FirstOffset == 0 && po.LastOffset == n/3, "ListOffsets %s/0: first %d last %d, want 0 and %d", topic, po.FirstOffset, po.LastOffset, n/3)
		case 1:
			// Message i went to partition i%3 at offset i/3: the first at or after message
			// 150's time on partition 1 is message 151, offset 50.
			got := -1
			for off, ts := range po.Offsets {
				got = int(off)
				// kafka-go reports the requested timestamp, not the record's.
				expect(ts.Equal(at), "ListOffsets by time: offset %d with timestamp %v, want the requested %v", off, ts, at)
			}
			expect(got == 50, "ListOffsets %s/1 at %v: %v, want offset 50", topic, at, po.Offsets)
		}
	}
	ok("Client ListOffsets: first 0 / last %d on partition 0, by timestamp 50 on partition 1", n/3)

	// --- consumer group: commit, close, resume ------------------------------------------------
	group := unique("kafkago-group")
	kafkaGoGroupResume(ctx, bootstrap, client, topic, group, want)

	lg, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	must(err, "ListGroups")
	must(lg.Error, "ListGroups")
	found := false
	for _, g := range lg.Groups {
		if g.GroupID == group {
			found = true
			expect(g.ProtocolType == "consumer" && g.Coordinator == node, "ListGroups %s: %+v", group, g)
		}
	}
	expect(found, "ListGroups does not list %s", group)
	dg, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	must(err, "DescribeGroups")
	expect(len(dg.Groups) == 1 && dg.Groups[0].Error == nil && dg.Groups[0].GroupState == "Empty" && len(dg.Groups[0].Members) == 0,
		"DescribeGroups after close: %+v", dg.Groups)
	fc, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	must(err, "FindCoordinator")
	must(fc.Error, "FindCoordinator")
	expect(fc.Coordinator.NodeID == node && strconv.Itoa(fc.Coordinator.Port) == portOf(bootstrap), "FindCoordinator: %+v, want node %d", fc.Coordinator, node)
	ok("Client ListGroups/DescribeGroups: %s is an Empty consumer group; FindCoordinator: node %d", group, node)

	// Commit as an admin (generation -1, no member), fetch, delete one offset.
	oc, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 7, Metadata: "kafka-go"}}}})
	must(err, "OffsetCommit")
	for _, p := range oc.Topics[topic] {
		must(p.Error, "OffsetCommit")
	}
	of := kafkaGoCommitted(ctx, client, group, topic)
	expect(of[0].CommittedOffset == 7 && of[0].Metadata == "kafka-go" && of[1].CommittedOffset == n/3 && of[2].CommittedOffset == n/3,
		"OffsetFetch after OffsetCommit: %+v", of)
	od, err := client.OffsetDelete(ctx, &kafka.OffsetDeleteRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	must(err, "OffsetDelete")
	must(od.Error, "OffsetDelete")
	for _, p := range od.Topics[topic] {
		must(p.Error, "OffsetDelete")
	}
	of = kafkaGoCommitted(ctx, client, group, topic)
	expect(of[0].CommittedOffset == -1 && of[1].CommittedOffset == n/3, "OffsetFetch after OffsetDelete of partition 0: %+v", of)
	ok("Client OffsetCommit (partition 0 -> 7 with metadata), OffsetFetch shows it, OffsetDelete removes it")

	dgr, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
	must(err, "DeleteGroups")
	must(dgr.Errors[group], "DeleteGroups")
	dgr, err = client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
	must(err, "DeleteGroups (again)")
	expect(errors.Is(dgr.Errors[group], kafka.GroupIdNotFound), "DeleteGroups of a deleted group: %v, want GROUP_ID_NOT_FOUND", dgr.Errors[group])
	ok("Client DeleteGroups: deleted; again: GROUP_ID_NOT_FOUND")

	// --- producer ids, partitions, deletion ----------------------------------------------------
	ip, err := client.InitProducerID(ctx, &kafka.InitProducerIDRequest{TransactionTimeoutMs: 60000})
	must(err, "InitProducerID")
	must(ip.Error, "InitProducerID")
	ip2, err := client.InitProducerID(ctx, &kafka.InitProducerIDRequest{TransactionTimeoutMs: 60000})
	must(err, "InitProducerID")
	must(ip2.Error, "InitProducerID")
	expect(ip.Producer.ProducerID >= 0 && ip2.Producer.ProducerID != ip.Producer.ProducerID && ip.Producer.ProducerEpoch == 0,
		"InitProducerID twice: %+v then %+v, want two different ids at epoch 0", ip.Producer, ip2.Producer)
	ok("Client InitProducerID (no transactional id): ids %d and %d at epoch 0", ip.Producer.ProducerID, ip2.Producer.ProducerID)

	cp, err := client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 5}}})
	must(err, "CreatePartitions")
	must(cp.Errors[topic], "CreatePartitions")
	cp, err = client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 2}}})
	must(err, "CreatePartitions (fewer)")
	expect(errors.Is(cp.Errors[topic], kafka.InvalidPartitionNumber), "CreatePartitions to fewer: %v, want INVALID_PARTITIONS", cp.Errors[topic])
	parts := settle(func() int { return len(kafkaGoTopic(ctx, client, topic).Partitions) }, func(n int) bool { return n == 5 })
	expect(parts == 5, "Metadata after CreatePartitions: %d partitions, want 5", parts)
	ok("Client CreatePartitions: 3 -> 5; to fewer: INVALID_PARTITIONS")

	// Client.Fetch (a sessionless full fetch: session id -1, epoch -1) shows the batches
	// as stored: the default Writer's carry no producer id and no codec, the codec
	// Writers' their codec.
	for _, b := range kafkaGoBatches(ctx, client, topic, 3, ends) {
		expect(b.ProducerID == -1 && b.Attributes.Compression() == 0, "default Writer: stored batch at %d has producer id %d codec %v, want -1 and none", b.BaseOffset, b.ProducerID, b.Attributes.Compression())
	}
	for _, b := range kafkaGoBatches(ctx, client, codecTopic, len(codecs), codecEnds) {
		expect(b.Attributes.Compression() == codecs[b.partition], "partition %d: batch at %d has codec %v, want %v", b.partition, b.BaseOffset, b.Attributes.Compression(), codecs[b.partition])
	}
	ok("Client Fetch: the default Writer's batches have producer id -1 and no codec; gzip, snappy, lz4 and zstd batches are stored with their codec")

	dt, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	must(err, "DeleteTopics")
	must(dt.Errors[topic], "DeleteTopics")
	dt, err = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	must(err, "DeleteTopics (again)")
	expect(errors.Is(dt.Errors[topic], kafka.UnknownTopicOrPartition), "DeleteTopics of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", dt.Errors[topic])
	ok("Client DeleteTopics: deleted; again: UNKNOWN_TOPIC_OR_PARTITION")
}

func kafkaGoTopic(ctx context.Context, client *kafka.Client, topic string) kafka.Topic {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	must(err, "Metadata")
	expect(len(meta.Topics) == 1 && meta.Topics[0].Name == topic, "Metadata for %s: %+v", topic, meta.Topics)
	must(meta.Topics[0].Error, "Metadata "+topic)
	slices.SortFunc(meta.Topics[0].Partitions, func(a, b kafka.Partition) int { return a.ID - b.ID })
	return meta.Topics[0]
}

// kafkaGoOffsets lists the first (or last, when first is false) offsets of partitions
// 0..parts-1.
func kafkaGoOffsets(ctx context.Context, client *kafka.Client, topic string, parts int, first bool) map[int]int64 {
	var reqs []kafka.OffsetRequest
	for p := 0; p < parts; p++ {
		if first {
			reqs = append(reqs, kafka.FirstOffsetOf(p))
		} else {
			reqs = append(reqs, kafka.LastOffsetOf(p))
		}
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	must(err, "ListOffsets")
	out := map[int]int64{}
	for _, po := range lo.Topics[topic] {
		must(po.Error, "ListOffsets")
		if first {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
	}
	return out
}

type kgBatch struct {
	*protocol.RecordBatch
	partition int
}

// kafkaGoBatches reads the stored record batches of partitions 0..parts-1 with the
// Client's Fetch, up to ends[p].
func kafkaGoBatches(ctx context.Context, client *kafka.Client, topic string, parts int, ends map[int]int64) []kgBatch {
	var out []kgBatch
	for p := 0; p < parts; p++ {
		next := int64(0)
		for next < ends[p] {
			f, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: next, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond})
			// An answer without the topic (a top-level error) reads as "topic not found".
			must(err, fmt.Sprintf("Client.Fetch %s/%d at %d (a sessionless fetch: session id -1, epoch -1; see the fetch-sessions check)", topic, p, next))
			must(f.Error, "Fetch")
			stream, isStream := f.Records.(*protocol.RecordStream)
			expect(isStream, "Fetch %s/%d at %d: records are %T, want a stream of batches", topic, p, next, f.Records)
			progressed := false
			for _, rr := range stream.Records {
				b, isBatch := rr.(*protocol.RecordBatch)
				expect(isBatch, "Fetch %s/%d: a %T, want a v2 record batch", topic, p, rr)
				last := b.BaseOffset
				for {
					r, err := b.ReadRecord()
					if err != nil {
						break
					}
					last = r.Offset
				}
				if last < next {
					continue
				}
				out = append(out, kgBatch{b, p})
				next = last + 1
				progressed = true
			}
			expect(progressed, "Fetch %s/%d at %d returned no batch", topic, p, next)
		}
	}
	return out
}

// kafkaGoCodecs writes with each codec kafka-go has to its own partition, checks the
// stored batches' codec and reads the messages back.
func kafkaGoCodecs(ctx context.Context, bootstrap string, client *kafka.Client) (string, []kafka.Compression, map[int]int64) {
	topic := unique("kafkago-codecs")
	codecs := []kafka.Compression{kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd}
	ct, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: len(codecs), ReplicationFactor: 1}}})
	must(err, "CreateTopics")
	must(ct.Errors[topic], "CreateTopics "+topic)
	const per = 200
	ends := map[int]int64{}
	for i, c := range codecs {
		w := &kafka.Writer{Addr: kafka.TCP(bootstrap), Topic: topic, Transport: client.Transport, Compression: c, RequiredAcks: kafka.RequireAll,
			Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }), BatchSize: per, BatchTimeout: 10 * time.Millisecond}
		var msgs []kafka.Message
		for j := 0; j < per; j++ {
			msgs = append(msgs, kafka.Message{Partition: i, Key: []byte(c.String()), Value: compressible(j)})
		}
		must(w.WriteMessages(ctx, msgs...), "WriteMessages "+c.String())
		must(w.Close(), "Writer.Close")
		ends[i] = per
	}
	for i, c := range codecs {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: i, MaxWait: 500 * time.Millisecond})
		for j := 0; j < per; j++ {
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			m, err := r.ReadMessage(rctx)
			rcancel()
			must(err, "ReadMessage "+c.String())
			expect(string(m.Key) == c.String() && bytes.Equal(m.Value, compressible(j)) && m.Offset == int64(j), "%v partition: message %d is %d %q=%q", c, j, m.Offset, m.Key, m.Value)
		}
		must(r.Close(), "Reader.Close")
	}
	ok("Writer codecs gzip, snappy, lz4, zstd (acks=all): %d messages each round-trip", per)
	return topic, codecs, ends
}

// kafkaGoConn uses the low-level Conn: leader dial, auto-created topic, write, read a
// batch, read partitions.
func kafkaGoConn(ctx context.Context, bootstrap string) {
	topic := unique("kafkago-conn")
	// Metadata for an unknown topic auto-creates it (auto.create.topics.enable=true);
	// the first answer may be LEADER_NOT_AVAILABLE, so retry.
	var conn *kafka.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		conn, err = kafka.DialLeader(ctx, "tcp", bootstrap, topic, 0)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	must(err, "DialLeader (auto-creating "+topic+")")
	defer conn.Close()
	must(conn.SetDeadline(time.Now().Add(20*time.Second)), "SetDeadline")
	written, err := conn.WriteMessages(kafka.Message{Key: []byte("a"), Value: []byte("one")}, kafka.Message{Key: []byte("b"), Value: []byte("two")})
	must(err, "Conn.WriteMessages")
	expect(written == len("one")+len("two")+2, "Conn.WriteMessages wrote %d bytes", written)
	first, last, err := conn.ReadOffsets()
	must(err, "Conn.ReadOffsets")
	expect(first == 0 && last == 2, "Conn.ReadOffsets: %d..%d, want 0..2", first, last)
	_, err = conn.Seek(0, kafka.SeekAbsolute)
	must(err, "Conn.Seek")
	batch := conn.ReadBatch(1, 1<<20)
	var got []string
	for {
		m, err := batch.ReadMessage()
		if err != nil {
			break
		}
		got = append(got, fmt.Sprintf("%s=%s@%d", m.Key, m.Value, m.Offset))
	}
	must(batch.Close(), "Batch.Close")
	expect(slices.Equal(got, []string{"a=one@0", "b=two@1"}), "Conn.ReadBatch: %v", got)
	parts, err := conn.ReadPartitions(topic)
	must(err, "Conn.ReadPartitions")
	expect(len(parts) == 1 && parts[0].Topic == topic && parts[0].ID == 0, "Conn.ReadPartitions: %+v, want the one auto-created partition", parts)
	host, port, _ := net.SplitHostPort(bootstrap)
	expect(parts[0].Leader.Host == host && strconv.Itoa(parts[0].Leader.Port) == port, "Conn.ReadPartitions leader %+v, want %s", parts[0].Leader, bootstrap)
	ok("Conn: DialLeader auto-created %s; WriteMessages, ReadOffsets (0..2), ReadBatch and ReadPartitions agree", topic)
}

func kafkaGoCommitted(ctx context.Context, client *kafka.Client, group, topic string) map[int]kafka.OffsetFetchPartition {
	of, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	must(err, "OffsetFetch")
	must(of.Error, "OffsetFetch")
	out := map[int]kafka.OffsetFetchPartition{}
	for _, p := range of.Topics[topic] {
		must(p.Error, "OffsetFetch")
		out[p.Partition] = p
	}
	return out
}

// kafkaGoGroupResume reads a third of topic with a group Reader, commits exactly those
// messages, closes it, and reads the rest with a new group Reader: every message once.
func kafkaGoGroupResume(ctx context.Context, bootstrap string, client *kafka.Client, topic, group string, want []sent) {
	newReader := func() *kafka.Reader {
		return kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, GroupID: group, Topic: topic,
			MaxWait: 500 * time.Millisecond, StartOffset: kafka.FirstOffset, SessionTimeout: 10 * time.Second,
			HeartbeatInterval: time.Second, RebalanceTimeout: 10 * time.Second})
	}
	read := func(r *kafka.Reader, n int) []kafka.Message {
		var out []kafka.Message
		for len(out) < n {
			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			m, err := r.FetchMessage(rctx)
			rcancel()
			must(err, fmt.Sprintf("FetchMessage (%d of %d)", len(out), n))
			out = append(out, m)
		}
		return out
	}
	m := len(want) / 3
	got := map[tp][]int64{}

	r1 := newReader()
	first := read(r1, m)
	must(r1.CommitMessages(ctx, first...), "CommitMessages (session 1)")
	must(r1.Close(), "Reader.Close (session 1)")
	committed := map[int]int64{}
	for _, msg := range first {
		got[tp{topic, int32(msg.Partition)}] = append(got[tp{topic, int32(msg.Partition)}], msg.Offset)
		committed[msg.Partition] = max(committed[msg.Partition], msg.Offset+1)
	}
	of := kafkaGoCommitted(ctx, client, group, topic)
	for p := 0; p < 3; p++ {
		w, found := committed[p]
		if !found {
			w = -1
		}
		expect(of[p].CommittedOffset == w, "OffsetFetch after session 1: partition %d at %d, want %d", p, of[p].CommittedOffset, w)
	}
	ok("group Reader %s: session 1 read %d messages, committed %v, closed; OffsetFetch shows exactly those", group, m, committed)

	r2 := newReader()
	rest := len(want) - m
	second := read(r2, rest)
	dg, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	must(err, "DescribeGroups")
	expect(len(dg.Groups) == 1 && dg.Groups[0].Error == nil && dg.Groups[0].GroupState == "Stable" && len(dg.Groups[0].Members) == 1,
		"DescribeGroups while consuming: %+v", dg.Groups)
	mem := dg.Groups[0].Members[0]
	expect(len(mem.MemberAssignments.Topics) == 1 && mem.MemberAssignments.Topics[0].Topic == topic && len(mem.MemberAssignments.Topics[0].Partitions) == 3 &&
		slices.Equal(mem.MemberMetadata.Topics, []string{topic}),
		"DescribeGroups member: subscribed %v assigned %+v, want all 3 partitions of %s", mem.MemberMetadata.Topics, mem.MemberAssignments.Topics, topic)
	xctx, xcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	extra, err := r2.FetchMessage(xctx)
	xcancel()
	expect(err != nil, "session 2 read a message beyond the %d left: %s/%d@%d", rest, extra.Topic, extra.Partition, extra.Offset)
	for _, msg := range second {
		got[tp{topic, int32(msg.Partition)}] = append(got[tp{topic, int32(msg.Partition)}], msg.Offset)
	}
	exactlyOnce("group "+group, want, got, topic)
	must(r2.CommitMessages(ctx, second...), "CommitMessages (session 2)")
	must(r2.Close(), "Reader.Close (session 2)")
	ok("group Reader %s: session 2 (Stable, one member assigned all 3 partitions) resumed at the commits and read the other %d: every message once", group, rest)
}
