package main

// KIP-227 fetch session fields, raw: what a broker that gives out no sessions must do
// with each combination clients send. kafka-go's Client.Fetch sends session id -1 with
// epoch -1 (FINAL_EPOCH), a sessionless full fetch.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func fetchSessionsCheck(bootstrap string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := franzClient(bootstrap, kgo.MetadataMinAge(10*time.Millisecond))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := unique("fetch-sessions")
	created, err := adm.CreateTopics(ctx, 1, 1, nil, topic)
	must(err, "CreateTopics")
	must(created[topic].Err, "CreateTopics")
	must(cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("one")}, &kgo.Record{Topic: topic, Value: []byte("two")}).FirstErr(), "ProduceSync")
	td, err := adm.ListTopics(ctx, topic)
	must(err, "ListTopics")

	fetch := func(sessionID, epoch int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 100
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		req.SessionID = sessionID
		req.SessionEpoch = epoch
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rt.TopicID = td[topic].ID // Fetch v13+ names topics by id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = 0
		rp.FetchOffset = 0
		rp.PartitionMaxBytes = 1 << 20
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		must(err, "Fetch")
		return resp
	}
	// A full fetch (epoch 0 = INITIAL or -1 = FINAL) is answered whatever the session
	// id: Kafka closes a named session and answers the request in full.
	for _, c := range []struct {
		id, epoch int32
		what      string
	}{
		{0, -1, "session 0, epoch -1 (sessionless: librdkafka, kafka-go's Conn)"},
		{-1, -1, "session -1, epoch -1 (sessionless: kafka-go's Client.Fetch)"},
		{0, 0, "session 0, epoch 0 (full, asking for a session: the Java client, franz-go)"},
		{12345, 0, "session 12345 (unknown), epoch 0 (full, closing it and asking for a new one)"},
		{12345, -1, "session 12345 (unknown), epoch -1 (full, closing it)"},
	} {
		resp := fetch(c.id, c.epoch)
		must(kerr.ErrorForCode(resp.ErrorCode), "Fetch "+c.what)
		expect(len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) == 1, "Fetch %s: %d topics in the answer, want 1", c.what, len(resp.Topics))
		p := resp.Topics[0].Partitions[0]
		must(kerr.ErrorForCode(p.ErrorCode), "Fetch "+c.what)
		expect(p.HighWatermark == 2 && len(p.RecordBatches) > 0, "Fetch %s: high watermark %d, %d bytes of records, want 2 and the records", c.what, p.HighWatermark, len(p.RecordBatches))
		ok("Fetch with %s: answered in full (high watermark 2, %d bytes of records)", c.what, len(p.RecordBatches))
	}
	// An incremental fetch (epoch > 0) of a session the broker never gave out.
	resp := fetch(12345, 1)
	expect(resp.ErrorCode == kerr.FetchSessionIDNotFound.Code, "incremental Fetch of an unknown session: error %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(resp.ErrorCode))
	ok("incremental Fetch (session 12345, epoch 1) of an unknown session: FETCH_SESSION_ID_NOT_FOUND")
	dt, err := adm.DeleteTopics(ctx, topic)
	must(err, "DeleteTopics")
	must(dt[topic].Err, "DeleteTopics")
}
