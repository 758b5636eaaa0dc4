package eventlog

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/schemas"
)

// Headers a dead-lettered record carries after its own, unchanged headers.
// Numbers are decimal, the time is RFC 3339 in UTC. A record dead-lettered
// twice (replayed from a dead-letter topic and failing again) carries two
// sets; the last one is the latest failure.
const (
	HeaderDLQError     = "dlq_error"     // why the record could not be processed
	HeaderDLQGroup     = "dlq_group"     // consumer group that gave up on it
	HeaderDLQTopic     = "dlq_topic"     // where it was read: topic,
	HeaderDLQPartition = "dlq_partition" // partition
	HeaderDLQOffset    = "dlq_offset"    // and offset
	HeaderDLQTime      = "dlq_time"      // when the group gave up on it
)

// DeadLetterTopic names topic's dead-letter topic.
func DeadLetterTopic(topic string) string { return topic + schemas.DLQSuffix }

// DeadLetter returns the record that parks r on its topic's dead-letter
// topic: r's key, value, timestamp and headers, plus the dead-letter headers
// saying which group failed on it, where it was read, when, and why. r is
// not modified.
func DeadLetter(r *kgo.Record, group string, cause error, at time.Time) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+6)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(cause.Error())},
		kgo.RecordHeader{Key: HeaderDLQGroup, Value: []byte(group)},
		kgo.RecordHeader{Key: HeaderDLQTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderDLQPartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		kgo.RecordHeader{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderDLQTime, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{
		Topic:     DeadLetterTopic(r.Topic),
		Key:       r.Key,
		Value:     r.Value,
		Headers:   h,
		Timestamp: r.Timestamp,
	}
}
