package main

// franz-go (kgo) and its admin client kadm.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func franzClient(bootstrap string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.FetchMaxWait(500 * time.Millisecond)}, opts...)...)
	must(err, "kgo.NewClient")
	return cl
}

func configOf(rc kadm.ResourceConfig, name string) (kadm.Config, bool) {
	for _, c := range rc.Configs {
		if c.Key == name {
			return c, true
		}
	}
	return kadm.Config{}, false
}

// topicConfig describes topic's config name, waiting (see settle) for value if it is
// not empty.
func topicConfig(ctx context.Context, adm *kadm.Client, topic, name string, value ...string) *kadm.Config {
	return settle(func() *kadm.Config { return describeTopicConfig(ctx, adm, topic, name) },
		func(c *kadm.Config) bool { return len(value) == 0 || c.MaybeValue() == value[0] })
}

func describeTopicConfig(ctx context.Context, adm *kadm.Client, topic, name string) *kadm.Config {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	must(err, "DescribeTopicConfigs")
	rc, err := rcs.On(topic, nil)
	must(err, "DescribeTopicConfigs: no answer for "+topic)
	must(rc.Err, "DescribeTopicConfigs "+topic)
	c, found := configOf(rc, name)
	expect(found, "DescribeTopicConfigs %s has no %s", topic, name)
	return &c
}

func franzCheck(bootstrap string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// kadm answers metadata from kgo's cache (up to MetadataMinAge, 5 s by default):
	// the admin client keeps it short so that a listing follows the calls before it.
	cl := franzClient(bootstrap, kgo.MetadataMinAge(10*time.Millisecond))
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// --- cluster ------------------------------------------------------------------
	brokers, err := adm.ListBrokers(ctx)
	must(err, "ListBrokers")
	expect(len(brokers) == 1, "ListBrokers: %d brokers, want 1: %+v", len(brokers), brokers)
	node := brokers[0].NodeID
	port := portOf(bootstrap)
	expect(strconv.Itoa(int(brokers[0].Port)) == port, "ListBrokers: broker port %d, bootstrap %s", brokers[0].Port, bootstrap)
	versions, err := adm.ApiVersions(ctx)
	must(err, "ApiVersions")
	var produceMax int16 = -1
	versions.Each(func(v kadm.BrokerApiVersions) {
		must(v.Err, "ApiVersions")
		if k, found := v.KeyMaxVersion(int16(kmsg.Produce)); found {
			produceMax = k
		}
	})
	expect(produceMax >= 3, "ApiVersions: Produce max version %d, want >= 3 (record batches v2)", produceMax)
	ok("kadm ListBrokers: one broker (node %d) at port %s; ApiVersions: Produce up to v%d", node, port, produceMax)

	// --- create / list / describe / alter topics -------------------------------------
	topic := unique("franz-events")
	created, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("86400000")}, topic)
	must(err, "CreateTopics")
	ct := created[topic]
	must(ct.Err, "CreateTopics "+topic)
	expect(ct.NumPartitions == 3 && ct.ReplicationFactor == 1, "CreateTopics: %d partitions x %d replicas, want 3 x 1", ct.NumPartitions, ct.ReplicationFactor)
	again, err := adm.CreateTopics(ctx, 3, 1, nil, topic)
	must(err, "CreateTopics (again)")
	expect(errors.Is(again[topic].Err, kerr.TopicAlreadyExists), "CreateTopics of an existing topic: %v, want TOPIC_ALREADY_EXISTS", again[topic].Err)
	bad, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, unique("franz-bad"))
	must(err, "CreateTopics (bad config)")
	for _, r := range bad {
		expect(errors.Is(r.Err, kerr.InvalidConfig), "CreateTopics with retention.ms=soon: %v, want INVALID_CONFIG", r.Err)
	}
	ok("kadm CreateTopics: %s with 3 partitions, replication 1; again: TOPIC_ALREADY_EXISTS; retention.ms=soon: INVALID_CONFIG", topic)

	// kadm answers ListTopics from the client's metadata cache, which CreateTopics does not
	// refresh: a listing of all topics cached just before the creation can come back for
	// a moment (seen once in CI). Ask again for up to 10 s; the broker itself has the topic
	// as soon as CreateTopics answers.
	var topics kadm.TopicDetails
	var found bool
	var td kadm.TopicDetail
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		topics, err = adm.ListTopics(ctx)
		must(err, "ListTopics")
		if td, found = topics[topic]; found || time.Now().After(deadline) {
			break
		}
	}
	expect(found, "ListTopics does not list %s: %v", topic, topics.Names())
	must(td.Err, "ListTopics "+topic)
	expect(len(td.Partitions) == 3, "ListTopics: %s has %d partitions, want 3", topic, len(td.Partitions))
	for p, pd := range td.Partitions {
		expect(pd.Leader == node && slices.Equal(pd.Replicas, []int32{node}) && slices.Equal(pd.ISR, []int32{node}),
			"ListTopics: %s/%d leader %d replicas %v isr %v, want node %d", topic, p, pd.Leader, pd.Replicas, pd.ISR, node)
	}
	expect(!td.IsInternal && td.ID != (kadm.TopicID{}), "ListTopics: %s internal=%v id=%v", topic, td.IsInternal, td.ID)
	ok("kadm ListTopics: %s, 3 partitions led by node %d, a topic id", topic, node)

	c := topicConfig(ctx, adm, topic, "retention.ms")
	expect(c.Value != nil && *c.Value == "86400000" && c.Source == kmsg.ConfigSourceDynamicTopicConfig,
		"DescribeTopicConfigs retention.ms = %v (%v), want 86400000 (DYNAMIC_TOPIC_CONFIG)", c.MaybeValue(), c.Source)
	c = topicConfig(ctx, adm, topic, "cleanup.policy")
	expect(c.MaybeValue() == "delete" && c.Source != kmsg.ConfigSourceDynamicTopicConfig, "cleanup.policy = %s (%v), want the default delete", c.MaybeValue(), c.Source)
	ok("kadm DescribeTopicConfigs: retention.ms=86400000 as a dynamic topic config, cleanup.policy=delete by default")

	// Incremental alter: set one, set another, then delete the first back to its default.
	alter := func(what string, cfgs ...kadm.AlterConfig) {
		rs, err := adm.AlterTopicConfigs(ctx, cfgs, topic)
		must(err, what)
		for _, r := range rs {
			must(r.Err, what+" "+r.Name)
		}
	}
	alter("AlterTopicConfigs (set)",
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("3600000")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000000")})
	expect(topicConfig(ctx, adm, topic, "retention.ms", "3600000").MaybeValue() == "3600000", "retention.ms not altered to 3600000")
	expect(topicConfig(ctx, adm, topic, "max.message.bytes", "2000000").MaybeValue() == "2000000", "max.message.bytes not altered to 2000000")
	alter("AlterTopicConfigs (delete)", kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"})
	c = topicConfig(ctx, adm, topic, "retention.ms", "604800000")
	expect(c.MaybeValue() == "604800000" && c.Source != kmsg.ConfigSourceDynamicTopicConfig, "retention.ms after delete = %s (%v), want the default 604800000", c.MaybeValue(), c.Source)
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("soon")}}, topic)
	must(err, "AlterTopicConfigs (bad)")
	expect(len(rs) == 1 && errors.Is(rs[0].Err, kerr.InvalidConfig), "AlterTopicConfigs retention.ms=soon: %+v, want INVALID_CONFIG", rs)
	ok("kadm AlterTopicConfigs (incremental): set retention.ms and max.message.bytes, delete retention.ms back to 604800000; a bad value: INVALID_CONFIG")

	// Non-incremental alter (AlterConfigs) replaces the whole set of dynamic configs.
	rs, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("7200000")}}, topic)
	must(err, "AlterTopicConfigsState")
	for _, r := range rs {
		must(r.Err, "AlterTopicConfigsState")
	}
	expect(topicConfig(ctx, adm, topic, "retention.ms", "7200000").MaybeValue() == "7200000", "AlterTopicConfigsState: retention.ms not 7200000")
	c = topicConfig(ctx, adm, topic, "max.message.bytes", "1048588")
	expect(c.MaybeValue() == "1048588" && c.Source != kmsg.ConfigSourceDynamicTopicConfig, "AlterTopicConfigsState: max.message.bytes = %s (%v), want back to the default 1048588", c.MaybeValue(), c.Source)
	ok("kadm AlterTopicConfigsState (AlterConfigs): retention.ms=7200000 and max.message.bytes back to its default")

	brokerCfgs, err := adm.DescribeBrokerConfigs(ctx, node)
	must(err, "DescribeBrokerConfigs")
	bc, err := brokerCfgs.On(strconv.Itoa(int(node)), nil)
	must(err, "DescribeBrokerConfigs: no answer for the broker")
	must(bc.Err, "DescribeBrokerConfigs")
	np, found := configOf(bc, "num.partitions")
	expect(found && np.MaybeValue() == "1", "DescribeBrokerConfigs num.partitions = %s, want 1", np.MaybeValue())
	ok("kadm DescribeBrokerConfigs: num.partitions=1 on node %d", node)

	// --- produce: the default producer (idempotent, snappy), keys, headers, timestamps ----
	const n = 300
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	prod := franzClient(bootstrap, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     compressible(i),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "client", Value: []byte("franz-go")}, {Key: "empty"}},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		})
	}
	// In chunks, so there are several batches per partition.
	for i := 0; i < n; i += 50 {
		must(prod.ProduceSync(ctx, recs[i:i+50]...).FirstErr(), "ProduceSync (default producer)")
	}
	prod.Close()
	var want []sent
	perPartition := map[int32]int64{}
	pid := recs[0].ProducerID
	for i, r := range recs {
		expect(r.ProducerID == pid && r.ProducerID >= 0 && r.ProducerEpoch >= 0, "record %d: producer id %d epoch %d, want one id >= 0 for all", i, r.ProducerID, r.ProducerEpoch)
		expect(r.Offset == perPartition[r.Partition], "record %d: offset %d on partition %d, want %d", i, r.Offset, r.Partition, perPartition[r.Partition])
		perPartition[r.Partition]++
		want = append(want, sent{key: string(r.Key), value: r.Value, partition: r.Partition, offset: r.Offset, timestamp: r.Timestamp})
	}
	expect(len(perPartition) == 3, "the keys went to %d partitions, want all 3", len(perPartition))
	ok("kgo default producer: %d keyed records with headers to 3 partitions (%v), producer id %d, offsets from 0", n, perPartition, pid)

	// Read back with a direct consumer: everything the producer sent, byte for byte, and
	// the batches as stored carry the idempotent producer's id and the snappy codec.
	got := map[string]*kgo.Record{}
	rd := franzClient(bootstrap, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pollUntil(ctx, rd, n, func(r *kgo.Record) { got[string(r.Key)] = r })
	rd.Close()
	for _, s := range want {
		r := got[s.key]
		expect(r != nil, "key %s not read back", s.key)
		expect(bytes.Equal(r.Value, s.value) && r.Partition == s.partition && r.Offset == s.offset,
			"key %s: read %s/%d@%d %q, sent to %d@%d %q", s.key, r.Topic, r.Partition, r.Offset, r.Value, s.partition, s.offset, s.value)
		expect(r.Timestamp.Equal(s.timestamp) && r.Attrs.TimestampType() == 0, "key %s: timestamp %v (type %d), sent %v (CreateTime)", s.key, r.Timestamp, r.Attrs.TimestampType(), s.timestamp)
		i, _ := strconv.Atoi(s.key[len("key-"):])
		expect(len(r.Headers) == 3 && r.Headers[0].Key == "i" && string(r.Headers[0].Value) == strconv.Itoa(i) &&
			r.Headers[1].Key == "client" && string(r.Headers[1].Value) == "franz-go" && r.Headers[2].Key == "empty" && len(r.Headers[2].Value) == 0,
			"key %s: headers %+v", s.key, r.Headers)
		expect(r.ProducerID == pid && r.ProducerEpoch >= 0, "key %s: stored producer id %d epoch %d, want %d (idempotent)", s.key, r.ProducerID, r.ProducerEpoch, pid)
		expect(r.Attrs.CompressionType() == 2, "key %s: stored codec %d, want 2 (snappy, kgo's default)", s.key, r.Attrs.CompressionType())
	}
	ok("kgo consumer: all %d read back (values, partitions, offsets, CreateTime timestamps, headers incl. an empty one); stored batches carry producer id %d (idempotent) and snappy", n, pid)

	// A non-idempotent producer's batches carry no producer id.
	plain := franzClient(bootstrap, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
	pr := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("plain"), Value: []byte("plain")})
	plain.Close()
	must(pr.FirstErr(), "ProduceSync (DisableIdempotentWrite)")
	r := pr[0].Record
	expect(r.ProducerID == -1, "a non-idempotent record got producer id %d, want -1", r.ProducerID)
	rd = franzClient(bootstrap, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {r.Partition: kgo.NewOffset().At(r.Offset)}}))
	var back *kgo.Record
	pollUntil(ctx, rd, 1, func(x *kgo.Record) { back = x })
	rd.Close()
	expect(string(back.Key) == "plain" && back.ProducerID == -1 && back.ProducerEpoch == -1, "non-idempotent record read back as %q pid %d epoch %d, want pid -1", back.Key, back.ProducerID, back.ProducerEpoch)
	ok("kgo DisableIdempotentWrite + acks=1: the stored batch has producer id -1")
	perPartition[r.Partition]++
	want = append(want, sent{key: "plain", value: []byte("plain"), partition: r.Partition, offset: r.Offset})

	franzCodecs(ctx, bootstrap, adm)

	// --- list offsets ---------------------------------------------------------------
	starts, err := adm.ListStartOffsets(ctx, topic)
	must(err, "ListStartOffsets")
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "ListEndOffsets")
	for p := int32(0); p < 3; p++ {
		s, _ := starts.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		must(s.Err, "ListStartOffsets")
		must(e.Err, "ListEndOffsets")
		expect(s.Offset == 0 && e.Offset == perPartition[p], "partition %d: start %d end %d, want 0 and %d", p, s.Offset, e.Offset, perPartition[p])
	}
	// By timestamp: the first offset per partition at or after record 150's timestamp.
	at := want[150].timestamp
	after, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic)
	must(err, "ListOffsetsAfterMilli")
	maxTs, err := adm.ListMaxTimestampOffsets(ctx, topic)
	must(err, "ListMaxTimestampOffsets")
	for p := int32(0); p < 3; p++ {
		wantOff, wantTs := int64(-1), int64(-1)
		var maxOff, maxMs int64 = -1, -1
		for _, s := range want[:n] {
			if s.partition != p {
				continue
			}
			if !s.timestamp.Before(at) && wantOff < 0 {
				wantOff, wantTs = s.offset, s.timestamp.UnixMilli()
			}
			if s.timestamp.UnixMilli() > maxMs {
				maxOff, maxMs = s.offset, s.timestamp.UnixMilli()
			}
		}
		// The non-idempotent record came last, with the newest timestamp.
		if p == r.Partition {
			maxOff, maxMs = r.Offset, r.Timestamp.UnixMilli()
		}
		a, _ := after.Lookup(topic, p)
		must(a.Err, "ListOffsetsAfterMilli")
		expect(a.Offset == wantOff && a.Timestamp == wantTs, "partition %d: offset after %d is %d (ts %d), want %d (ts %d)", p, at.UnixMilli(), a.Offset, a.Timestamp, wantOff, wantTs)
		m, _ := maxTs.Lookup(topic, p)
		must(m.Err, "ListMaxTimestampOffsets")
		expect(m.Offset == maxOff && m.Timestamp == maxMs, "partition %d: max timestamp at %d (ts %d), want %d (ts %d)", p, m.Offset, m.Timestamp, maxOff, maxMs)
	}
	ok("kadm ListStartOffsets/ListEndOffsets (0 and %v), ListOffsetsAfterMilli and ListMaxTimestampOffsets give the expected offsets and timestamps", perPartition)

	// One node, so the leader epoch is and stays 0: its end offset is the log end.
	var ler kadm.OffsetForLeaderEpochRequest
	for p := int32(0); p < 3; p++ {
		ler.Add(topic, p, 0)
	}
	epochs, err := adm.OffsetForLeaderEpoch(ctx, ler)
	must(err, "OffsetForLeaderEpoch")
	for p := int32(0); p < 3; p++ {
		e := epochs[topic][p]
		expect(e.Err == nil && e.LeaderEpoch == 0 && e.EndOffset == perPartition[p] && e.NodeID == node,
			"OffsetForLeaderEpoch %s/%d epoch 0: %+v, want epoch 0 ending at %d on node %d", topic, p, e, perPartition[p], node)
	}
	ok("kadm OffsetForLeaderEpoch: epoch 0 ends at the log end offsets %v", perPartition)

	// --- consumer group: commit, close, resume -----------------------------------------
	group := unique("franz-group")
	franzGroupResume(ctx, bootstrap, adm, topic, group, want, "classic")

	described, err := adm.DescribeGroups(ctx, group)
	must(err, "DescribeGroups")
	dg := described[group]
	must(dg.Err, "DescribeGroups "+group)
	expect(dg.State == "Empty" && dg.ProtocolType == "consumer" && len(dg.Members) == 0, "DescribeGroups after close: state %s protocol type %q members %d, want Empty consumer 0", dg.State, dg.ProtocolType, len(dg.Members))
	listed, err := adm.ListGroups(ctx)
	must(err, "ListGroups")
	lg, found := listed[group]
	expect(found && lg.ProtocolType == "consumer" && lg.State == "Empty" && lg.Coordinator == node, "ListGroups: %s %+v (listed %v)", group, lg, found)
	coords := adm.FindGroupCoordinators(ctx, group)
	expect(len(coords) == 1 && coords[group].Err == nil && coords[group].NodeID == node, "FindGroupCoordinators: %+v, want node %d", coords, node)
	lags, err := adm.Lag(ctx, group)
	must(err, "Lag")
	lag := lags[group]
	expect(lag.Error() == nil && len(lag.Lag[topic]) == 3 && lag.Lag.Total() == 0, "Lag of %s after reading everything: %+v", group, lag.Lag)
	ok("kadm DescribeGroups/ListGroups: %s is Empty, protocol type consumer, coordinator node %d; Lag 0", group, node)

	// Commit and fetch offsets as an admin, delete one, then delete the group.
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1, Metadata: "admin"})
	cr, err := adm.CommitOffsets(ctx, group, os)
	must(err, "CommitOffsets")
	must(cr.Error(), "CommitOffsets")
	fetched, err := adm.FetchOffsets(ctx, group)
	must(err, "FetchOffsets")
	must(fetched.Error(), "FetchOffsets")
	for p := int32(0); p < 3; p++ {
		o, found := fetched.Lookup(topic, p)
		// kgo's own commits carry its member id as metadata.
		wantAt, metaOK := perPartition[p], strings.HasPrefix(o.Metadata, "kgo-")
		if p == 0 {
			wantAt, metaOK = 2, o.Metadata == "admin"
		}
		expect(found && o.At == wantAt && metaOK, "FetchOffsets %s/%d: %+v (found %v), want %d", topic, p, o, found, wantAt)
	}
	dr, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	must(err, "DeleteOffsets")
	must(dr.Error(), "DeleteOffsets")
	fetched, err = adm.FetchOffsets(ctx, group)
	must(err, "FetchOffsets")
	_, found = fetched.Lookup(topic, 0)
	o1, found1 := fetched.Lookup(topic, 1)
	expect(!found && found1 && o1.At == perPartition[1], "FetchOffsets after DeleteOffsets of partition 0: 0 found=%v, 1 = %+v", found, o1)
	ok("kadm CommitOffsets (partition 0 -> 2 with metadata), FetchOffsets shows it and the group's own commits, DeleteOffsets removes it")

	dgr, err := adm.DeleteGroup(ctx, group)
	must(err, "DeleteGroup")
	must(dgr.Err, "DeleteGroup")
	listed, err = adm.ListGroups(ctx)
	must(err, "ListGroups")
	_, found = listed[group]
	expect(!found, "ListGroups still lists %s after DeleteGroup", group)
	dgr, err = adm.DeleteGroup(ctx, group)
	expect(errors.Is(err, kerr.GroupIDNotFound) || errors.Is(dgr.Err, kerr.GroupIDNotFound), "DeleteGroup of a deleted group: %v / %v, want GROUP_ID_NOT_FOUND", err, dgr.Err)
	ok("kadm DeleteGroup: %s gone from ListGroups; deleting it again: GROUP_ID_NOT_FOUND", group)

	// --- create partitions ------------------------------------------------------------
	cp, err := adm.UpdatePartitions(ctx, 5, topic)
	must(err, "UpdatePartitions")
	must(cp[topic].Err, "UpdatePartitions")
	cp, err = adm.CreatePartitions(ctx, 1, topic)
	must(err, "CreatePartitions")
	must(cp[topic].Err, "CreatePartitions")
	cp, err = adm.UpdatePartitions(ctx, 2, topic)
	must(err, "UpdatePartitions (fewer)")
	expect(errors.Is(cp[topic].Err, kerr.InvalidPartitions), "UpdatePartitions to fewer: %v, want INVALID_PARTITIONS", cp[topic].Err)
	topics = settle(func() kadm.TopicDetails {
		topics, err := adm.ListTopics(ctx, topic)
		must(err, "ListTopics")
		return topics
	}, func(t kadm.TopicDetails) bool { return len(t[topic].Partitions) == 6 })
	expect(len(topics[topic].Partitions) == 6, "ListTopics after CreatePartitions: %d partitions, want 6", len(topics[topic].Partitions))
	ends, err = adm.ListEndOffsets(ctx, topic)
	must(err, "ListEndOffsets")
	for p := int32(3); p < 6; p++ {
		e, _ := ends.Lookup(topic, p)
		expect(e.Err == nil && e.Offset == 0, "new partition %d: end offset %d err %v", p, e.Offset, e.Err)
	}
	ok("kadm UpdatePartitions to 5, CreatePartitions +1: 6 partitions, the new ones empty; fewer: INVALID_PARTITIONS")

	// --- delete records -----------------------------------------------------------------
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5})
	del, err := adm.DeleteRecords(ctx, os)
	must(err, "DeleteRecords")
	dres, _ := del.Lookup(topic, 1)
	must(dres.Err, "DeleteRecords")
	expect(dres.LowWatermark == 5, "DeleteRecords low watermark %d, want 5", dres.LowWatermark)
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: perPartition[1] + 10})
	del, err = adm.DeleteRecords(ctx, os)
	must(err, "DeleteRecords (past the end)")
	dres, _ = del.Lookup(topic, 1)
	expect(errors.Is(dres.Err, kerr.OffsetOutOfRange), "DeleteRecords past the end: %v, want OFFSET_OUT_OF_RANGE", dres.Err)
	starts, err = adm.ListStartOffsets(ctx, topic)
	must(err, "ListStartOffsets")
	s1, _ := starts.Lookup(topic, 1)
	expect(s1.Offset == 5, "start offset of partition 1 after DeleteRecords: %d, want 5", s1.Offset)
	rd = franzClient(bootstrap, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {1: kgo.NewOffset().AtStart()}}))
	var first *kgo.Record
	pollUntil(ctx, rd, 1, func(x *kgo.Record) {
		if first == nil {
			first = x
		}
	})
	rd.Close()
	expect(first.Offset == 5, "reading partition 1 from the start gave offset %d first, want 5", first.Offset)
	ok("kadm DeleteRecords before offset 5 of partition 1: low watermark 5, reads start there; past the end: OFFSET_OUT_OF_RANGE")

	// --- delete topics ------------------------------------------------------------------
	dt, err := adm.DeleteTopics(ctx, topic)
	must(err, "DeleteTopics")
	must(dt[topic].Err, "DeleteTopics")
	deadline := time.Now().Add(10 * time.Second)
	for {
		topics, err = adm.ListTopics(ctx)
		must(err, "ListTopics")
		if _, found := topics[topic]; !found {
			break
		}
		expect(time.Now().Before(deadline), "ListTopics still lists %s 10 s after DeleteTopics", topic)
		time.Sleep(200 * time.Millisecond)
	}
	dt, err = adm.DeleteTopics(ctx, topic)
	must(err, "DeleteTopics (again)")
	expect(errors.Is(dt[topic].Err, kerr.UnknownTopicOrPartition), "DeleteTopics of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", dt[topic].Err)
	ok("kadm DeleteTopics: %s gone from ListTopics; deleting it again: UNKNOWN_TOPIC_OR_PARTITION", topic)
}

// franzCodecs produces with each codec kgo has to its own partition and checks that the
// stored batches carry that codec and decode back to what was sent.
func franzCodecs(ctx context.Context, bootstrap string, adm *kadm.Client) {
	topic := unique("franz-codecs")
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		attr  uint8
	}{{"gzip", kgo.GzipCompression(), 1}, {"snappy", kgo.SnappyCompression(), 2}, {"lz4", kgo.Lz4Compression(), 3}, {"zstd", kgo.ZstdCompression(), 4}}
	created, err := adm.CreateTopics(ctx, int32(len(codecs)), 1, nil, topic)
	must(err, "CreateTopics")
	must(created[topic].Err, "CreateTopics "+topic)
	const per = 200
	for i, c := range codecs {
		prod := franzClient(bootstrap, kgo.ProducerBatchCompression(c.codec), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var recs []*kgo.Record
		for j := 0; j < per; j++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i), Key: []byte(c.name), Value: compressible(j)})
		}
		must(prod.ProduceSync(ctx, recs...).FirstErr(), "ProduceSync with "+c.name)
		prod.Close()
	}
	rd := franzClient(bootstrap, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	counts := map[int32]int{}
	pollUntil(ctx, rd, per*len(codecs), func(r *kgo.Record) {
		c := codecs[r.Partition]
		expect(string(r.Key) == c.name && bytes.Equal(r.Value, compressible(int(r.Offset))), "%s partition: record %d is %q=%q", c.name, r.Offset, r.Key, r.Value)
		expect(r.Attrs.CompressionType() == c.attr, "%s partition: stored codec %d, want %d", c.name, r.Attrs.CompressionType(), c.attr)
		counts[r.Partition]++
	})
	rd.Close()
	for i := range codecs {
		expect(counts[int32(i)] == per, "%s: read %d records, want %d", codecs[i].name, counts[int32(i)], per)
	}
	ok("kgo codecs gzip, snappy, lz4, zstd: %d records each round-trip, stored with that codec", per)
}

// pollUntil polls cl until it has handed n records to each, failing on a fetch error or
// when nothing arrives for 20 s.
func pollUntil(ctx context.Context, cl *kgo.Client, n int, each func(*kgo.Record)) {
	got := 0
	for got < n {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		fs := cl.PollRecords(pctx, n-got)
		cancel()
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			fail("polled %d of %d records, then nothing for 20 s", got, n)
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fail("fetch %s/%d: %v", t, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			got++
			each(r)
		})
	}
}

// franzGroupResume reads part of topic in group, commits exactly what it read, closes
// (leaving the group), and reads the rest in a new session: together, every record
// once. kind is "classic" or "consumer" (KIP-848), checked against what the broker
// reports.
func franzGroupResume(ctx context.Context, bootstrap string, adm *kadm.Client, topic, group string, want []sent, kind string, opts ...kgo.Opt) {
	m := len(want) / 3
	base := []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10 * time.Second)}
	base = append(base, opts...)
	got := map[tp][]int64{}

	s1 := franzClient(bootstrap, base...)
	var first []*kgo.Record
	pollUntil(ctx, s1, m, func(r *kgo.Record) { first = append(first, r) })
	must(s1.CommitRecords(ctx, first...), "CommitRecords (session 1)")
	committed := map[int32]int64{}
	for _, r := range first {
		got[tp{r.Topic, r.Partition}] = append(got[tp{r.Topic, r.Partition}], r.Offset)
		committed[r.Partition] = max(committed[r.Partition], r.Offset+1)
	}
	s1.Close() // leaves the group; autocommit is off, so nothing more is committed
	fetched, err := adm.FetchOffsets(ctx, group)
	must(err, "FetchOffsets")
	must(fetched.Error(), "FetchOffsets")
	// Exactly what session 1 committed: closing it committed nothing more.
	expect(len(fetched[topic]) == len(committed), "FetchOffsets after session 1: %v, want only %v", fetched[topic], committed)
	for p, at := range committed {
		o, found := fetched.Lookup(topic, p)
		expect(found && o.At == at, "FetchOffsets after session 1: %s/%d = %+v (found %v), want %d", topic, p, o, found, at)
	}
	ok("kgo group %s (%s): session 1 read %d records, committed %v, closed; FetchOffsets shows those offsets", group, kind, m, committed)

	s2 := franzClient(bootstrap, base...)
	var second []*kgo.Record
	rest := len(want) - m
	pollUntil(ctx, s2, rest, func(r *kgo.Record) { second = append(second, r) })
	// While session 2 is a member, the broker describes it.
	franzDescribeActive(ctx, adm, group, topic, kind)
	// Nothing beyond the rest may arrive.
	pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	extra := s2.PollFetches(pctx)
	cancel()
	expect(extra.NumRecords() == 0, "session 2 read %d records more than the %d left", extra.NumRecords(), rest)
	for _, r := range second {
		got[tp{r.Topic, r.Partition}] = append(got[tp{r.Topic, r.Partition}], r.Offset)
	}
	exactlyOnce("group "+group, want, got, topic)
	must(s2.CommitRecords(ctx, second...), "CommitRecords (session 2)")
	s2.Close()
	ok("kgo group %s (%s): session 2 resumed at the committed offsets and read the other %d: every record once", group, kind, rest)
}

// franzDescribeActive checks that the broker describes group with one member that owns
// every partition of topic, as a classic group (DescribeGroups) or a KIP-848 consumer
// group (ConsumerGroupDescribe), and lists it with that type.
func franzDescribeActive(ctx context.Context, adm *kadm.Client, group, topic, kind string) {
	td, err := adm.ListTopics(ctx, topic)
	must(err, "ListTopics")
	parts := len(td[topic].Partitions)
	byType, err := adm.ListGroupsByType(ctx, []string{kind})
	must(err, "ListGroupsByType")
	lg, found := byType[group]
	expect(found && lg.GroupType == kind && lg.State == "Stable", "ListGroupsByType(%s): %s %+v (found %v), want a Stable %s group", kind, group, lg, found, kind)
	if kind == "classic" {
		d, err := adm.DescribeGroups(ctx, group)
		must(err, "DescribeGroups")
		g := d[group]
		must(g.Err, "DescribeGroups")
		expect(g.State == "Stable" && g.ProtocolType == "consumer" && g.Protocol == "cooperative-sticky" && len(g.Members) == 1,
			"DescribeGroups: state %s type %s protocol %s members %d, want Stable consumer cooperative-sticky 1", g.State, g.ProtocolType, g.Protocol, len(g.Members))
		as := g.AssignedPartitions()
		expect(len(as[topic]) == parts, "DescribeGroups: the member is assigned %v, want all %d partitions of %s", as, parts, topic)
		ok("kadm DescribeGroups while consuming: Stable, cooperative-sticky, one member assigned all %d partitions; ListGroupsByType(classic) lists it", parts)
		return
	}
	d, err := adm.DescribeConsumerGroups(ctx, group)
	must(err, "DescribeConsumerGroups")
	g := d[group]
	must(g.Err, "DescribeConsumerGroups")
	expect(g.State == "Stable" && len(g.Members) == 1 && g.Epoch > 0 && g.AssignmentEpoch == g.Epoch,
		"DescribeConsumerGroups: state %s members %d epoch %d assignment epoch %d", g.State, len(g.Members), g.Epoch, g.AssignmentEpoch)
	mem := g.Members[0]
	expect(len(mem.Assignment[topic]) == parts && len(mem.TargetAssignment[topic]) == parts && mem.MemberEpoch == g.Epoch &&
		slices.Equal(mem.SubscribedTopics, []string{topic}),
		"DescribeConsumerGroups member: assignment %v target %v epoch %d subscribed %v", mem.Assignment, mem.TargetAssignment, mem.MemberEpoch, mem.SubscribedTopics)
	ok("kadm DescribeConsumerGroups while consuming: Stable, assignor %s, group epoch %d, one member at that epoch assigned all %d partitions; ListGroupsByType(consumer) lists it", g.AssignorName, g.Epoch, parts)
}

// franzKIP848Check runs a consumer group with the KIP-848 protocol
// (group.protocol=consumer; kgo.ServerSideBalancer), for both server-side assignors.
func franzKIP848Check(bootstrap string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := franzClient(bootstrap, kgo.MetadataMinAge(10*time.Millisecond))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := unique("franz-848")
	created, err := adm.CreateTopics(ctx, 4, 1, nil, topic)
	must(err, "CreateTopics")
	must(created[topic].Err, "CreateTopics")
	want := produceKeyed(ctx, bootstrap, topic, 240)
	ok("kgo produced %d records to %s (4 partitions)", len(want), topic)

	for _, b := range []struct {
		assignor string
		balancer kgo.GroupBalancer
	}{{"uniform", kgo.CooperativeStickyBalancer()}, {"range", kgo.RangeBalancer()}} {
		group := unique("franz-848-" + b.assignor)
		franzGroupResume(ctx, bootstrap, adm, topic, group, want, "consumer", kgo.ServerSideBalancer(), kgo.Balancers(b.balancer))
		d, err := adm.DescribeConsumerGroups(ctx, group)
		must(err, "DescribeConsumerGroups")
		g := d[group]
		must(g.Err, "DescribeConsumerGroups")
		expect(g.State == "Empty" && len(g.Members) == 0, "DescribeConsumerGroups after close: state %s members %d, want Empty 0", g.State, len(g.Members))
		fetched, err := adm.FetchOffsets(ctx, group)
		must(err, "FetchOffsets")
		ends, err := adm.ListEndOffsets(ctx, topic)
		must(err, "ListEndOffsets")
		ends.Each(func(e kadm.ListedOffset) {
			o, found := fetched.Lookup(topic, e.Partition)
			expect(found && o.At == e.Offset, "FetchOffsets %s/%d = %+v, want the end offset %d", topic, e.Partition, o, e.Offset)
		})
		dgr, err := adm.DeleteGroup(ctx, group)
		must(err, "DeleteGroup")
		must(dgr.Err, "DeleteGroup")
		ok("KIP-848 group %s (assignor %s): Empty after close with offsets at the end; deleted", group, b.assignor)
	}
	franzKIP848TwoMembers(ctx, bootstrap, adm)
}

// franzKIP848TwoMembers has two members share a KIP-848 group: the broker splits the
// partitions between them, and together they read each record once.
func franzKIP848TwoMembers(ctx context.Context, bootstrap string, adm *kadm.Client) {
	topic := unique("franz-848-pair")
	created, err := adm.CreateTopics(ctx, 4, 1, nil, topic)
	must(err, "CreateTopics")
	must(created[topic].Err, "CreateTopics")
	group := unique("franz-848-pair")
	opts := []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10 * time.Second)}
	a, b := franzClient(bootstrap, append(opts, kgo.ClientID("member-a"))...), franzClient(bootstrap, append(opts, kgo.ClientID("member-b"))...)
	defer a.Close()
	defer b.Close()
	// Members join on their first poll; poll both (nothing to read yet) until the broker
	// has settled two members with two partitions each.
	var g kadm.DescribedConsumerGroup
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, cl := range []*kgo.Client{a, b} {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			expect(fs.NumRecords() == 0, "read records from an empty topic")
		}
		d, err := adm.DescribeConsumerGroups(ctx, group)
		must(err, "DescribeConsumerGroups")
		g = d[group]
		settled := g.Err == nil && g.State == "Stable" && len(g.Members) == 2 && g.AssignmentEpoch == g.Epoch
		for _, m := range g.Members {
			settled = settled && len(m.Assignment[topic]) == 2 && m.MemberEpoch == g.Epoch
		}
		if settled {
			break
		}
		expect(time.Now().Before(deadline), "the group did not settle two members with two partitions each in 30 s: %+v", g)
	}
	owner := map[int32]string{}
	for _, m := range g.Members {
		for p := range m.Assignment[topic] {
			expect(owner[p] == "", "partition %d assigned to %s and %s", p, owner[p], m.ClientID)
			owner[p] = m.ClientID
		}
	}
	expect(len(owner) == 4, "assigned partitions %v, want all 4", owner)
	ok("KIP-848 group %s: two members, the broker's %s assignor gave each two partitions %v at group epoch %d", group, g.AssignorName, owner, g.Epoch)

	want := produceKeyed(ctx, bootstrap, topic, 200)
	got := map[tp][]int64{}
	total := 0
	for total < len(want) {
		expect(time.Now().Before(deadline.Add(30*time.Second)), "the two members read %d of %d records", total, len(want))
		for name, cl := range map[string]*kgo.Client{"member-a": a, "member-b": b} {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				expect(owner[r.Partition] == name, "%s read partition %d, assigned to %s", name, r.Partition, owner[r.Partition])
				got[tp{r.Topic, r.Partition}] = append(got[tp{r.Topic, r.Partition}], r.Offset)
				total++
			})
		}
	}
	exactlyOnce("group "+group, want, got, topic)
	ok("KIP-848 group %s: the two members read the %d records once between them, each only its own partitions", group, len(want))
}

// produceKeyed sends n keyed records (keys k0..kN-1, compressible values) to topic with
// kgo's default producer and returns where each landed.
func produceKeyed(ctx context.Context, bootstrap, topic string, n int) []sent {
	prod := franzClient(bootstrap, kgo.DefaultProduceTopic(topic))
	defer prod.Close()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: compressible(i)})
	}
	must(prod.ProduceSync(ctx, recs...).FirstErr(), "ProduceSync")
	var want []sent
	for _, r := range recs {
		want = append(want, sent{key: string(r.Key), partition: r.Partition, offset: r.Offset})
	}
	return want
}
