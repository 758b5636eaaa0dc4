package kafkagroup_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/kafkagroup"
)

// The options build a group client (franz-go rejects a heartbeat interval
// above the session timeout) and say what the package doc promises; the
// heartbeat stays below a third of the session.
func TestOptsBuildAGroupMember(t *testing.T) {
	if 3*kafkagroup.HeartbeatInterval > kafkagroup.SessionTimeout {
		t.Errorf("heartbeat %v is more than a third of the session timeout %v", kafkagroup.HeartbeatInterval, kafkagroup.SessionTimeout)
	}
	cl, err := kgo.NewClient(append(kafkagroup.Opts(), kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for opt, want := range map[string]any{
		"SessionTimeout":         kafkagroup.SessionTimeout,
		"HeartbeatInterval":      kafkagroup.HeartbeatInterval,
		"FetchMaxWait":           kafkagroup.FetchMaxWait,
		"FetchMaxBytes":          int32(kafkagroup.FetchMaxBytes),
		"FetchMaxPartitionBytes": int32(kafkagroup.FetchMaxPartitionBytes),
	} {
		if got := cl.OptValue(opt); got != want {
			t.Errorf("%s = %v (%T), want %v (%T)", opt, got, got, want, want)
		}
	}
	bs, _ := cl.OptValue("Balancers").([]kgo.GroupBalancer)
	if len(bs) != 1 || bs[0].ProtocolName() != "cooperative-sticky" {
		t.Errorf("balancers %v, want cooperative-sticky only", bs)
	}
}
