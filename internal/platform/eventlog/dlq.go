package eventlog

import (
	"fmt"
	"strconv"
	"strings"
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

// DeadLetterInfo is what the dead-letter headers of a record say: the
// latest failure.
type DeadLetterInfo struct {
	Error, Group, Topic string
	Partition           int32
	Offset              int64
	At                  time.Time
}

// Origin names where the record was first read: "topic/partition/offset".
func (d DeadLetterInfo) Origin() string {
	return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset)
}

// ReadDeadLetter parses the dead-letter headers of r (the last set, if it
// failed more than once); ok is false for a record without them.
func ReadDeadLetter(r *kgo.Record) (d DeadLetterInfo, ok bool) {
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderDLQError:
			d.Error, ok = v, true
		case HeaderDLQGroup:
			d.Group = v
		case HeaderDLQTopic:
			d.Topic = v
		case HeaderDLQPartition:
			p, _ := strconv.ParseInt(v, 10, 32)
			d.Partition = int32(p)
		case HeaderDLQOffset:
			d.Offset, _ = strconv.ParseInt(v, 10, 64)
		case HeaderDLQTime:
			d.At, _ = time.Parse(time.RFC3339Nano, v)
		}
	}
	return d, ok && d.Topic != ""
}

// Redrive returns the record that sends a dead letter back to the topic it
// came from: its key, value, timestamp and original headers, without the
// dead-letter headers, so that every consumer decodes it again (through
// the upcasters of this build).
func Redrive(r *kgo.Record) (*kgo.Record, error) {
	d, ok := ReadDeadLetter(r)
	if !ok {
		return nil, fmt.Errorf("record %s/%d/%d has no dead-letter headers", r.Topic, r.Partition, r.Offset)
	}
	h := make([]kgo.RecordHeader, 0, len(r.Headers))
	for _, x := range r.Headers {
		if !strings.HasPrefix(x.Key, "dlq_") {
			h = append(h, x)
		}
	}
	return &kgo.Record{Topic: d.Topic, Key: r.Key, Value: r.Value, Headers: h, Timestamp: r.Timestamp}, nil
}
