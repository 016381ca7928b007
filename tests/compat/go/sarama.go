package main

// IBM/sarama: producers, consumers, consumer groups and the ClusterAdmin. Sarama has no
// KIP-848 (group.protocol=consumer) consumer, only the classic protocol.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig(version sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = version
	c.ClientID = "runnel-compat-sarama"
	c.Producer.Return.Successes = true // a SyncProducer needs it
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = 500 * time.Millisecond
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	return c
}

// saramaCheck runs the checks twice: with Sarama's default protocol version (what an
// application gets unless it sets Config.Version) and with the newest it knows, so
// both old and new request versions are covered. Sarama lowers each request to what
// the broker's ApiVersions allow.
func saramaCheck(bootstrap string) {
	for _, v := range []sarama.KafkaVersion{sarama.DefaultVersion, sarama.MaxVersion} {
		saramaCheckVersion(bootstrap, v)
	}
}

func saramaCheckVersion(bootstrap string, version sarama.KafkaVersion) {
	cfg := saramaConfig(version)
	vs := "v" + version.String()
	addrs := []string{bootstrap}
	client, err := sarama.NewClient(addrs, cfg)
	must(err, "sarama.NewClient")
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	must(err, "sarama.NewClusterAdminFromClient")

	// --- cluster ----------------------------------------------------------------------
	brokers, controller, err := admin.DescribeCluster()
	must(err, "DescribeCluster")
	expect(len(brokers) == 1 && portOf(brokers[0].Addr()) == portOf(bootstrap),
		"DescribeCluster: brokers %v, want one at %s", brokerAddrs(brokers), bootstrap)
	node := brokers[0].ID()
	expect(controller == node, "DescribeCluster: controller %d, want the one node %d", controller, node)
	ok("[%s] ClusterAdmin DescribeCluster: one broker, node %d, at %s; it is the controller", vs, node, brokers[0].Addr())

	// --- topics -------------------------------------------------------------------------
	topic := unique("sarama-events")
	retention := "86400000"
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}, false), "CreateTopic "+topic)
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	expect(errors.Is(err, sarama.ErrTopicAlreadyExists), "CreateTopic of an existing topic: %v, want TOPIC_ALREADY_EXISTS", err)
	err = admin.CreateTopic(unique("sarama-rf3"), &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false)
	expect(errors.Is(err, sarama.ErrInvalidReplicationFactor), "CreateTopic with replication factor 3 on one broker: %v, want INVALID_REPLICATION_FACTOR", err)
	err = admin.CreateTopic(unique("sarama-validate"), &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, true)
	must(err, "CreateTopic validateOnly")
	ok("[%s] ClusterAdmin CreateTopic: %s (3 partitions); again: TOPIC_ALREADY_EXISTS; replication factor 3: INVALID_REPLICATION_FACTOR; validateOnly passes", vs, topic)

	// Kafka may take a moment to list a new topic (so says CreateTopic's doc): retry.
	var listed map[string]sarama.TopicDetail
	var td sarama.TopicDetail
	found := false
	for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		listed, err = admin.ListTopics()
		must(err, "ListTopics")
		td, found = listed[topic]
	}
	expect(found && td.NumPartitions == 3 && td.ReplicationFactor == 1, "ListTopics: %s %+v (found %v)", topic, td, found)
	expect(td.ConfigEntries["retention.ms"] != nil && *td.ConfigEntries["retention.ms"] == retention,
		"ListTopics: %s non-default configs %v, want retention.ms=%s", topic, configMap(td.ConfigEntries), retention)
	metas, err := admin.DescribeTopics([]string{topic})
	must(err, "DescribeTopics")
	expect(len(metas) == 1 && metas[0].Err == sarama.ErrNoError && len(metas[0].Partitions) == 3, "DescribeTopics: %+v", metas)
	for _, p := range metas[0].Partitions {
		expect(p.Err == sarama.ErrNoError && p.Leader == node && slices.Equal(p.Replicas, []int32{node}) && slices.Equal(p.Isr, []int32{node}),
			"DescribeTopics %s/%d: leader %d replicas %v isr %v err %v", topic, p.ID, p.Leader, p.Replicas, p.Isr, p.Err)
	}
	ok("[%s] ClusterAdmin ListTopics: %s with 3 partitions, replication 1, non-default configs %v; DescribeTopics: each partition led by node %d", vs, topic, configMap(td.ConfigEntries), node)

	describe := func(name string) sarama.ConfigEntry {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		must(err, "DescribeConfig")
		for _, e := range entries {
			if e.Name == name {
				return e
			}
		}
		fail("DescribeConfig %s has no %s", topic, name)
		return sarama.ConfigEntry{}
	}
	// cfgOf describes config name, waiting (see settle) for value if given.
	cfgOf := func(name string, value ...string) sarama.ConfigEntry {
		return settle(func() sarama.ConfigEntry { return describe(name) },
			func(e sarama.ConfigEntry) bool { return len(value) == 0 || e.Value == value[0] })
	}
	e := cfgOf("retention.ms")
	expect(e.Value == retention && e.Source == sarama.SourceTopic && !e.Default, "DescribeConfig retention.ms: %+v, want %s from the topic", e, retention)
	e = cfgOf("cleanup.policy")
	expect(e.Value == "delete" && e.Source != sarama.SourceTopic, "DescribeConfig cleanup.policy: %+v, want the default delete", e)
	ok("[%s] ClusterAdmin DescribeConfig: retention.ms=%s (source Topic), cleanup.policy=delete (source %v)", vs, retention, e.Source)

	two := "2000000"
	must(admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"max.message.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &two},
		"retention.ms":      {Operation: sarama.IncrementalAlterConfigsOperationDelete},
	}, false), "IncrementalAlterConfig")
	e = cfgOf("max.message.bytes", two)
	expect(e.Value == two && e.Source == sarama.SourceTopic, "after IncrementalAlterConfig max.message.bytes: %+v", e)
	e = cfgOf("retention.ms", "604800000")
	expect(e.Value == "604800000" && e.Source != sarama.SourceTopic, "after IncrementalAlterConfig delete retention.ms: %+v, want the default 604800000", e)
	soon := "soon"
	err = admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &soon}}, false)
	expect(errors.Is(err, sarama.ErrInvalidConfig), "IncrementalAlterConfig retention.ms=soon: %v, want INVALID_CONFIG", err)
	seven := "7200000"
	must(admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &seven}, false), "AlterConfig")
	e = cfgOf("retention.ms", seven)
	expect(e.Value == seven && e.Source == sarama.SourceTopic, "after AlterConfig retention.ms: %+v", e)
	e = cfgOf("max.message.bytes", "1048588")
	expect(e.Value == "1048588" && e.Source != sarama.SourceTopic, "after AlterConfig (which replaces all) max.message.bytes: %+v, want the default 1048588", e)
	ok("[%s] ClusterAdmin IncrementalAlterConfig (set max.message.bytes, delete retention.ms; a bad value: INVALID_CONFIG) and AlterConfig (replaces the set)", vs)

	// --- the default producer: sync, acks=1, not idempotent, no compression --------------
	prod, err := sarama.NewSyncProducerFromClient(client)
	must(err, "NewSyncProducer")
	const n = 300
	var want []sent
	var msgs []*sarama.ProducerMessage
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < n; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic:     topic,
			Key:       sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
			Value:     sarama.ByteEncoder(compressible(i)),
			Headers:   []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(strconv.Itoa(i))}, {Key: []byte("client"), Value: []byte("sarama")}},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		})
	}
	must(prod.SendMessages(msgs[:n/2]), "SendMessages (default producer)")
	must(prod.Close(), "SyncProducer.Close")
	perPartition := map[int32]int64{}
	for i, m := range msgs[:n/2] {
		expect(m.Offset == perPartition[m.Partition], "message %d: offset %d on partition %d, want %d", i, m.Offset, m.Partition, perPartition[m.Partition])
		perPartition[m.Partition]++
		want = append(want, sent{key: fmt.Sprintf("key-%d", i), value: compressible(i), partition: m.Partition, offset: m.Offset, timestamp: m.Timestamp})
	}
	batches := saramaBatches(client, topic, 3, perPartition)
	for _, b := range batches {
		expect(b.ProducerID == -1 && b.ProducerEpoch == -1 && b.Codec == sarama.CompressionNone, "default producer: stored batch at %d has producer id %d epoch %d codec %v, want -1 -1 none", b.FirstOffset, b.ProducerID, b.ProducerEpoch, b.Codec)
	}
	ok("[%s] default SyncProducer: %d keyed messages with headers to 3 partitions %v; stored batches have producer id -1 (not idempotent), no codec", vs, n/2, perPartition)

	// --- an idempotent producer ---------------------------------------------------------
	icfg := saramaConfig(version)
	icfg.Producer.Idempotent = true
	icfg.Producer.RequiredAcks = sarama.WaitForAll
	icfg.Net.MaxOpenRequests = 1
	icfg.Producer.Compression = sarama.CompressionSnappy
	before := maps.Clone(perPartition)
	iprod, err := sarama.NewSyncProducer(addrs, icfg)
	must(err, "NewSyncProducer (idempotent)")
	for i := n / 2; i < n; i += 30 { // several batches per partition
		must(iprod.SendMessages(msgs[i:i+30]), "SendMessages (idempotent)")
	}
	must(iprod.Close(), "SyncProducer.Close (idempotent)")
	for i, m := range msgs[n/2:] {
		expect(m.Offset == perPartition[m.Partition], "message %d: offset %d on partition %d, want %d", n/2+i, m.Offset, m.Partition, perPartition[m.Partition])
		perPartition[m.Partition]++
		want = append(want, sent{key: fmt.Sprintf("key-%d", n/2+i), value: compressible(n/2 + i), partition: m.Partition, offset: m.Offset, timestamp: m.Timestamp})
	}
	batches = saramaBatches(client, topic, 3, perPartition)
	pid := int64(-2)
	seqs := map[int32]int32{}
	idem := 0
	for _, b := range batches {
		if b.FirstOffset < before[b.partition] {
			continue
		}
		idem++
		if pid == -2 {
			pid = b.ProducerID
		}
		expect(b.ProducerID == pid && pid >= 0 && b.ProducerEpoch >= 0 && b.Codec == sarama.CompressionSnappy,
			"idempotent producer: stored batch at %d has producer id %d epoch %d codec %v, want one id >= 0 and snappy", b.FirstOffset, b.ProducerID, b.ProducerEpoch, b.Codec)
		// Sequence numbers run on per partition from 0, batch after batch.
		expect(b.FirstSequence == seqs[b.partition], "partition %d: batch at %d has first sequence %d, want %d", b.partition, b.FirstOffset, b.FirstSequence, seqs[b.partition])
		seqs[b.partition] += int32(len(b.Records))
	}
	expect(idem > 3, "the idempotent producer left %d batches, want several per partition", idem)
	ok("[%s] idempotent SyncProducer (acks=all, snappy): %d batches stored with producer id %d and per-partition sequences from 0 without gaps %v", vs, idem, pid, seqs)

	saramaCodecs(addrs, version, client, admin, vs)

	// --- consume everything back: a partition consumer per partition ------------------------
	cons, err := sarama.NewConsumerFromClient(client)
	must(err, "NewConsumer")
	got := map[string]*sarama.ConsumerMessage{}
	for p := int32(0); p < 3; p++ {
		for _, m := range saramaConsume(cons, topic, p, sarama.OffsetOldest, int(perPartition[p])) {
			got[string(m.Key)] = m
		}
	}
	must(cons.Close(), "Consumer.Close")
	for _, s := range want {
		m := got[s.key]
		expect(m != nil, "key %s not read back", s.key)
		i, _ := strconv.Atoi(s.key[len("key-"):])
		expect(bytes.Equal(m.Value, s.value) && m.Partition == s.partition && m.Offset == s.offset && m.Timestamp.Equal(s.timestamp),
			"key %s: read %d@%d %q ts %v, sent %d@%d %q ts %v", s.key, m.Partition, m.Offset, m.Value, m.Timestamp, s.partition, s.offset, s.value, s.timestamp)
		expect(len(m.Headers) == 2 && string(m.Headers[0].Key) == "i" && string(m.Headers[0].Value) == strconv.Itoa(i) &&
			string(m.Headers[1].Key) == "client" && string(m.Headers[1].Value) == "sarama", "key %s: headers %v", s.key, m.Headers)
	}
	ok("[%s] Consumer (partition consumers from the oldest offset): all %d messages back with keys, values, headers, timestamps and offsets", vs, n)

	// --- offsets ------------------------------------------------------------------------
	req := map[string]map[int32]int64{topic: {}}
	for p := int32(0); p < 3; p++ {
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		must(err, "GetOffset oldest")
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		must(err, "GetOffset newest")
		expect(oldest == 0 && newest == perPartition[p], "GetOffset %s/%d: oldest %d newest %d, want 0 and %d", topic, p, oldest, newest, perPartition[p])
		req[topic][p] = want[200].timestamp.UnixMilli()
	}
	byTime, err := admin.ListOffsets(req, nil)
	must(err, "ListOffsets")
	for p := int32(0); p < 3; p++ {
		wantOff := int64(-1)
		for _, s := range want {
			if s.partition == p && !s.timestamp.Before(want[200].timestamp) {
				wantOff = s.offset
				break
			}
		}
		r := byTime[topic][p]
		expect(r != nil && (r.Err == nil || errors.Is(r.Err, sarama.ErrNoError)) && r.Offset == wantOff, "ListOffsets %s/%d at %d: %+v, want offset %d", topic, p, req[topic][p], r, wantOff)
	}
	ok("[%s] Client.GetOffset oldest/newest (0 and %v) and ClusterAdmin.ListOffsets by timestamp", vs, perPartition)

	// --- consumer group: commit, close, resume ------------------------------------------------
	group := unique("sarama-group")
	saramaGroupResume(addrs, version, admin, topic, group, want, vs)

	groups, err := admin.ListConsumerGroups()
	must(err, "ListConsumerGroups")
	expect(groups[group] == "consumer", "ListConsumerGroups: %s has protocol type %q, want consumer", group, groups[group])
	descs, err := admin.DescribeConsumerGroups([]string{group})
	must(err, "DescribeConsumerGroups")
	expect(len(descs) == 1 && descs[0].Err == sarama.ErrNoError && descs[0].State == "Empty" && len(descs[0].Members) == 0 && descs[0].ProtocolType == "consumer",
		"DescribeConsumerGroups after close: %+v", descs[0])
	coord, err := admin.Coordinator(group)
	must(err, "Coordinator")
	expect(coord.ID() == node, "Coordinator of %s: node %d, want %d", group, coord.ID(), node)
	ok("[%s] ClusterAdmin ListConsumerGroups/DescribeConsumerGroups: %s is an Empty consumer group; Coordinator is node %d", vs, group, node)

	// Commit with an OffsetManager (OffsetCommit) and AlterConsumerGroupOffsets, fetch them.
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	must(err, "NewOffsetManager")
	pom, err := om.ManagePartition(topic, 0)
	must(err, "ManagePartition")
	off, meta := pom.NextOffset()
	expect(off == perPartition[0], "OffsetManager NextOffset of %s/0: %d %q, want the committed %d", topic, off, meta, perPartition[0])
	pom.ResetOffset(3, "sarama-om")
	om.Commit()
	must(pom.Close(), "PartitionOffsetManager.Close")
	must(om.Close(), "OffsetManager.Close")
	_, err = admin.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{topic: {1: {Offset: 4, Metadata: "sarama-alter", LeaderEpoch: -1}}}, nil)
	must(err, "AlterConsumerGroupOffsets")
	fetched, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	must(err, "ListConsumerGroupOffsets")
	expect(fetched.Err == sarama.ErrNoError, "ListConsumerGroupOffsets: %v", fetched.Err)
	for p, w := range map[int32]struct {
		at   int64
		meta string
	}{0: {3, "sarama-om"}, 1: {4, "sarama-alter"}, 2: {perPartition[2], ""}} {
		b := fetched.GetBlock(topic, p)
		expect(b != nil && b.Err == sarama.ErrNoError && b.Offset == w.at && (w.meta == "" || b.Metadata == w.meta),
			"ListConsumerGroupOffsets %s/%d: %+v, want %d %q", topic, p, b, w.at, w.meta)
	}
	must(admin.DeleteConsumerGroupOffset(group, topic, 0), "DeleteConsumerGroupOffset")
	fetched, err = admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	must(err, "ListConsumerGroupOffsets")
	b0, b1 := fetched.GetBlock(topic, 0), fetched.GetBlock(topic, 1)
	expect(b0 != nil && b0.Offset == -1 && b1 != nil && b1.Offset == 4, "after DeleteConsumerGroupOffset of partition 0: 0=%+v 1=%+v", b0, b1)
	ok("[%s] OffsetManager commit (3) and AlterConsumerGroupOffsets (4) show in ListConsumerGroupOffsets with metadata; DeleteConsumerGroupOffset removes one", vs)

	must(admin.DeleteConsumerGroup(group), "DeleteConsumerGroup")
	groups, err = admin.ListConsumerGroups()
	must(err, "ListConsumerGroups")
	_, found = groups[group]
	expect(!found, "ListConsumerGroups still lists %s after DeleteConsumerGroup", group)
	err = admin.DeleteConsumerGroup(group)
	expect(errors.Is(err, sarama.ErrGroupIDNotFound), "DeleteConsumerGroup of a deleted group: %v, want GROUP_ID_NOT_FOUND", err)
	ok("[%s] ClusterAdmin DeleteConsumerGroup: gone from the list; again: GROUP_ID_NOT_FOUND", vs)

	// --- partitions, records, log dirs, deletion ----------------------------------------------
	must(admin.CreatePartitions(topic, 5, nil, false), "CreatePartitions")
	err = admin.CreatePartitions(topic, 4, nil, false)
	expect(errors.Is(err, sarama.ErrInvalidPartitions), "CreatePartitions to fewer: %v, want INVALID_PARTITIONS", err)
	metas = settle(func() []*sarama.TopicMetadata {
		metas, err := admin.DescribeTopics([]string{topic})
		must(err, "DescribeTopics")
		return metas
	}, func(m []*sarama.TopicMetadata) bool { return len(m[0].Partitions) == 5 })
	expect(len(metas[0].Partitions) == 5, "DescribeTopics after CreatePartitions: %d partitions, want 5", len(metas[0].Partitions))
	ok("[%s] ClusterAdmin CreatePartitions: 3 -> 5; to fewer: INVALID_PARTITIONS", vs)

	must(admin.DeleteRecords(topic, map[int32]int64{1: 5}), "DeleteRecords")
	oldest, err := client.GetOffset(topic, 1, sarama.OffsetOldest)
	must(err, "GetOffset")
	expect(oldest == 5, "oldest offset of %s/1 after DeleteRecords: %d, want 5", topic, oldest)
	cons, err = sarama.NewConsumerFromClient(client)
	must(err, "NewConsumer")
	first := saramaConsume(cons, topic, 1, sarama.OffsetOldest, 1)
	must(cons.Close(), "Consumer.Close")
	expect(first[0].Offset == 5, "reading %s/1 from the oldest offset starts at %d, want 5", topic, first[0].Offset)
	err = admin.DeleteRecords(topic, map[int32]int64{1: perPartition[1] + 10})
	expect(errors.Is(err, sarama.ErrOffsetOutOfRange), "DeleteRecords past the end: %v, want OFFSET_OUT_OF_RANGE", err)
	ok("[%s] ClusterAdmin DeleteRecords before 5 on partition 1: oldest offset 5, reads start there; past the end: OFFSET_OUT_OF_RANGE", vs)

	dirs, err := admin.DescribeLogDirs([]int32{node})
	must(err, "DescribeLogDirs")
	sizes := map[int32]int64{}
	for _, d := range dirs[node] {
		expect(d.ErrorCode == sarama.ErrNoError && d.Path != "", "DescribeLogDirs: dir %q error %v", d.Path, d.ErrorCode)
		for _, t := range d.Topics {
			if t.Topic == topic {
				for _, p := range t.Partitions {
					sizes[p.PartitionID] = p.Size
				}
			}
		}
	}
	expect(len(sizes) == 5 && sizes[0] > 0 && sizes[2] > 0 && sizes[3] == 0 && sizes[4] == 0, "DescribeLogDirs sizes of %s: %v, want 5 partitions, 0 and 2 non-empty, 3 and 4 empty", topic, sizes)
	ok("[%s] ClusterAdmin DescribeLogDirs: %s's 5 partitions, sizes %v", vs, topic, sizes)

	must(admin.DeleteTopic(topic), "DeleteTopic")
	deadline := time.Now().Add(10 * time.Second)
	for {
		listed, err = admin.ListTopics()
		must(err, "ListTopics")
		if _, found := listed[topic]; !found {
			break
		}
		expect(time.Now().Before(deadline), "ListTopics still lists %s 10 s after DeleteTopic", topic)
		time.Sleep(200 * time.Millisecond)
	}
	err = admin.DeleteTopic(topic)
	expect(errors.Is(err, sarama.ErrUnknownTopicOrPartition), "DeleteTopic of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	ok("[%s] ClusterAdmin DeleteTopic: gone from ListTopics; again: UNKNOWN_TOPIC_OR_PARTITION", vs)
}

// saramaCodecs produces with each codec to its own partition and checks the stored
// batches' codec and the values read back.
func saramaCodecs(addrs []string, version sarama.KafkaVersion, client sarama.Client, admin sarama.ClusterAdmin, vs string) {
	topic := unique("sarama-codecs")
	codecs := []sarama.CompressionCodec{sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(len(codecs)), ReplicationFactor: 1}, false), "CreateTopic "+topic)
	const per = 200
	counts := map[int32]int64{}
	for i, codec := range codecs {
		cfg := saramaConfig(version)
		cfg.Producer.Compression = codec
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		prod, err := sarama.NewSyncProducer(addrs, cfg)
		must(err, "NewSyncProducer "+codec.String())
		var msgs []*sarama.ProducerMessage
		for j := 0; j < per; j++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i), Key: sarama.StringEncoder(codec.String()), Value: sarama.ByteEncoder(compressible(j))})
		}
		must(prod.SendMessages(msgs), "SendMessages "+codec.String())
		must(prod.Close(), "SyncProducer.Close")
		counts[int32(i)] = per
	}
	must(client.RefreshMetadata(topic), "RefreshMetadata")
	for _, b := range saramaBatches(client, topic, int32(len(codecs)), counts) {
		expect(b.Codec == codecs[b.partition], "partition %d: stored batch at %d has codec %v, want %v", b.partition, b.FirstOffset, b.Codec, codecs[b.partition])
	}
	cons, err := sarama.NewConsumerFromClient(client)
	must(err, "NewConsumer")
	for i, codec := range codecs {
		for j, m := range saramaConsume(cons, topic, int32(i), sarama.OffsetOldest, per) {
			expect(string(m.Key) == codec.String() && bytes.Equal(m.Value, compressible(j)) && m.Offset == int64(j),
				"%v partition: message %d is %d %q=%q", codec, j, m.Offset, m.Key, m.Value)
		}
	}
	must(cons.Close(), "Consumer.Close")
	must(admin.DeleteTopic(topic), "DeleteTopic "+topic)
	ok("[%s] codecs gzip, snappy, lz4, zstd: %d messages each round-trip, stored with that codec", vs, per)
}

type storedBatch struct {
	*sarama.RecordBatch
	partition int32
}

// saramaBatches fetches partitions 0..parts-1 of topic from offset 0 with a raw Fetch
// request, to see the record batches as the broker stores them, until ends[p] records.
func saramaBatches(client sarama.Client, topic string, parts int32, ends map[int32]int64) []storedBatch {
	var out []storedBatch
	for p := int32(0); p < parts; p++ {
		leader, err := client.Leader(topic, p)
		must(err, "Leader")
		next := int64(0)
		for next < ends[p] {
			req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 500, MinBytes: 1, MaxBytes: 1 << 20}
			req.AddBlock(topic, p, next, 1<<20, -1)
			resp, err := leader.Fetch(req)
			must(err, "Fetch")
			blk := resp.GetBlock(topic, p)
			expect(blk != nil && blk.Err == sarama.ErrNoError, "Fetch %s/%d: %+v", topic, p, blk)
			progressed := false
			for _, rs := range blk.RecordsSet {
				b := rs.RecordBatch
				expect(b != nil, "Fetch %s/%d at %d: not a v2 record batch", topic, p, next)
				if b.PartialTrailingRecord || b.FirstOffset+int64(b.LastOffsetDelta) < next {
					continue
				}
				out = append(out, storedBatch{b, p})
				next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
				progressed = true
			}
			expect(progressed, "Fetch %s/%d at %d returned no batch (high watermark %d)", topic, p, next, blk.HighWaterMarkOffset)
		}
	}
	return out
}

// saramaConsume reads n messages of topic/partition from offset.
func saramaConsume(cons sarama.Consumer, topic string, p int32, offset int64, n int) []*sarama.ConsumerMessage {
	pc, err := cons.ConsumePartition(topic, p, offset)
	must(err, fmt.Sprintf("ConsumePartition %s/%d", topic, p))
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case err := <-pc.Errors():
			fail("consume %s/%d: %v", topic, p, err)
		case <-timeout:
			fail("consume %s/%d: %d of %d messages in 30 s", topic, p, len(out), n)
		}
	}
	return out
}

// groupHandler is a sarama.ConsumerGroupHandler that marks (for commit) the first limit
// messages it gets across all claims and then ends the session.
type groupHandler struct {
	mu     sync.Mutex
	limit  int
	got    []*sarama.ConsumerMessage
	extra  int // messages after the limit
	done   chan struct{}
	claims map[string][]int32
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = s.Claims()
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		if len(h.got) < h.limit {
			h.got = append(h.got, m)
			s.MarkMessage(m, "")
			if len(h.got) == h.limit {
				s.Commit() // synchronous; autocommit is off
				close(h.done)
			}
		} else {
			h.extra++
		}
		h.mu.Unlock()
	}
	return nil
}

// saramaGroupResume reads a third of topic in group, commits exactly that, closes the
// group, and reads the rest in a new consumer group session: every record once.
func saramaGroupResume(addrs []string, version sarama.KafkaVersion, admin sarama.ClusterAdmin, topic, group string, want []sent, vs string) {
	m := len(want) / 3
	got := map[tp][]int64{}
	run := func(limit int, during func()) *groupHandler {
		cfg := saramaConfig(version)
		cfg.Consumer.Offsets.AutoCommit.Enable = false
		cfg.Consumer.Group.Session.Timeout = 10 * time.Second
		cfg.Consumer.Group.Heartbeat.Interval = time.Second
		cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
		must(err, "NewConsumerGroup")
		h := &groupHandler{limit: limit, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		select {
		case <-h.done:
		case err := <-errc:
			fail("ConsumerGroup.Consume: %v", err)
		case err := <-cg.Errors():
			fail("ConsumerGroup: %v", err)
		case <-time.After(30 * time.Second):
			h.mu.Lock()
			fail("group %s: %d of %d messages in 30 s", group, len(h.got), limit)
		}
		if during != nil {
			during()
		}
		cancel()
		must(<-errc, "ConsumerGroup.Consume")
		must(cg.Close(), "ConsumerGroup.Close")
		return h
	}

	h1 := run(m, nil)
	committed := map[int32]int64{}
	for _, msg := range h1.got {
		got[tp{msg.Topic, msg.Partition}] = append(got[tp{msg.Topic, msg.Partition}], msg.Offset)
		committed[msg.Partition] = max(committed[msg.Partition], msg.Offset+1)
	}
	fetched, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	must(err, "ListConsumerGroupOffsets")
	for p := int32(0); p < 3; p++ {
		wantAt, found := committed[p]
		if !found {
			wantAt = -1
		}
		b := fetched.GetBlock(topic, p)
		expect(b != nil && b.Offset == wantAt, "ListConsumerGroupOffsets after session 1: %s/%d = %+v, want %d", topic, p, b, wantAt)
	}
	ok("[%s] ConsumerGroup %s: session 1 read %d messages, committed %v, closed; ListConsumerGroupOffsets shows exactly those", vs, group, m, committed)

	rest := len(want) - m
	h2 := run(rest, func() {
		descs, err := admin.DescribeConsumerGroups([]string{group})
		must(err, "DescribeConsumerGroups")
		d := descs[0]
		expect(d.Err == sarama.ErrNoError && d.State == "Stable" && d.ProtocolType == "consumer" && d.Protocol == "range" && len(d.Members) == 1,
			"DescribeConsumerGroups while consuming: state %s type %s protocol %s members %d err %v", d.State, d.ProtocolType, d.Protocol, len(d.Members), d.Err)
		for _, mem := range d.Members {
			a, err := mem.GetMemberAssignment()
			must(err, "GetMemberAssignment")
			expect(a != nil && len(a.Topics[topic]) == 3, "DescribeConsumerGroups: member assignment %+v, want all 3 partitions of %s", a, topic)
		}
		// Nothing beyond the rest may arrive.
		time.Sleep(1500 * time.Millisecond)
	})
	h2.mu.Lock()
	expect(len(h2.got) == rest && h2.extra == 0, "session 2 got %d messages and %d more, want %d", len(h2.got), h2.extra, rest)
	for _, msg := range h2.got {
		got[tp{msg.Topic, msg.Partition}] = append(got[tp{msg.Topic, msg.Partition}], msg.Offset)
	}
	h2.mu.Unlock()
	exactlyOnce("group "+group, want, got, topic)
	ok("[%s] ConsumerGroup %s: session 2 (Stable, range, one member with all 3 partitions) resumed at the commits and read the other %d: every message once", vs, group, rest)
}

func configMap(m map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func brokerAddrs(bs []*sarama.Broker) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Addr())
	}
	return out
}
