// Package kafkagroup is the one place the shop's Kafka consumers take their
// consumer-group and fetch settings from: the processors
// (processors/consumer), the projector runner (projectors/runner) and the
// gateway's stock watcher (internal/edge/stockwatch, fetch limits only: it is
// not a group member, every gateway reads every notice). It consumes and
// produces nothing; it is a platform package and imports no context.
//
// # What a member's death costs
//
// A member that dies without leaving the group (SIGKILL, OOM kill, a lost
// host or network) keeps its partitions until the group coordinator has
// heard no heartbeat from it for [SessionTimeout] (10 s). The coordinator
// then starts a rebalance; the survivors hear of it on their next
// heartbeat, within [HeartbeatInterval] (1 s), rejoin, and the dead
// member's partitions are assigned to them in that same rebalance
// (cooperative-sticky: unowned partitions move at once, and a survivor
// keeps consuming the partitions it already owns meanwhile). So a dead
// member's partitions move within about 10 s + 1 s + the rebalance, which
// lasts as long as the slowest survivor takes to finish the batch it
// polled (the consumers use kgo.BlockRebalanceOnPoll), capped by franz-go's
// 60 s rebalance timeout. A member that stops cleanly leaves the group and
// its partitions move at once. Records the dead member processed but had
// not committed are delivered again: every consumer here is idempotent.
//
// # Why these values
//
//   - SessionTimeout 10 s, not franz-go's and Kafka's 45 s: a projector
//     killed under load froze the read models for 44 s. 10 s stays above
//     Kafka's group.min.session.timeout.ms (6 s) and tolerates a GC pause
//     or a slow broker for several heartbeats.
//   - HeartbeatInterval 1 s: below the 1/3 of the session timeout that
//     franz-go and Kafka recommend (so two lost heartbeats do not expire a
//     session), and it bounds how late a survivor learns a rebalance has
//     begun. It costs one small request per member per second to the
//     coordinator.
//   - cooperative-sticky, franz-go's default, pinned here: a rebalance
//     moves only the partitions that change owner (no stop-the-world), so
//     a member joining or dying does not pause the others.
//   - fetch limits (see [Fetch]): a bound on what one client buffers, since
//     one process (shop dev) runs a dozen consumers.
package kafkagroup

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The group settings [Opts] applies.
const (
	// SessionTimeout is how long the coordinator waits for a silent member
	// before it hands its partitions to the others.
	SessionTimeout = 10 * time.Second
	// HeartbeatInterval is how often a member tells the coordinator it is
	// alive, and so how late at most it learns of a rebalance.
	HeartbeatInterval = time.Second
)

// The fetch limits [Fetch] applies.
const (
	// FetchMaxWait is how long the broker may hold a fetch with no new
	// record: short, so that a partition resumed after backpressure joins
	// the next fetch request rather than waiting out a long poll.
	FetchMaxWait = 250 * time.Millisecond
	// FetchMaxBytes bounds one fetch response from one broker (franz-go's
	// default is 50 MiB): about 40,000 of the shop's records, many batches
	// for the processors (one partition's worth at a time) and the
	// projectors (2,000 records a batch).
	FetchMaxBytes = 16 << 20
	// FetchMaxPartitionBytes bounds one partition's share of a fetch
	// (Kafka's and franz-go's default, stated here): a busy partition
	// cannot crowd out the others. A larger record batch still comes
	// whole.
	FetchMaxPartitionBytes = 1 << 20
)

// Opts are the settings of every consumer-group member in the shop:
// session timeout, heartbeat interval, balancer and the fetch limits. The
// caller adds its group, topics, offsets and callbacks. See the package
// doc for the guarantee they give.
func Opts() []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SessionTimeout(SessionTimeout),
		kgo.HeartbeatInterval(HeartbeatInterval),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
	}, Fetch()...)
}

// Fetch are the fetch limits of every consumer in the shop, group members
// ([Opts] includes them) and direct consumers alike.
func Fetch() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchMaxWait(FetchMaxWait),
		kgo.FetchMaxBytes(FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(FetchMaxPartitionBytes),
	}
}
