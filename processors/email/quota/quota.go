// Package quota paces a consumer group's sends so that the whole group
// stays within a per-second quota, whatever the number of instances, with
// no coordination but the group's partition assignment and a shared clock.
//
// Time is cut into slots of (1+Margin)/Rate seconds, numbered from the Unix
// epoch; slot s belongs to partition s mod Partitions, and so to the member
// that owns that partition. A member sends only at the start of its own
// slots (within Tolerance), pooling them among its partitions: any of its
// partitions with a backlog may use any of its slots. So a member's share
// follows the partitions it owns, the members' shares always sum to the
// quota, a member that owns every partition uses the whole quota while it
// has any backlog, and since two sends of the group are at least Rate
// slots apart (≥ 1 + Margin − Tolerance seconds), no one-second window
// holds more than Rate sends. While a backlog exists the group sends
// Rate/(1+Margin) per second: 92.6% of the quota with the default margin.
//
// The margin left over (Margin·1s − Tolerance) absorbs the clock offset
// between hosts and the jitter of the provider's own clock (network and
// SMTP latency): 70 ms by default. (With 30 ms, a run on two busy cores
// once saw a send reach the SMTP server 44 ms after its slot while the
// fifth after it arrived at once: six messages inside one second of the
// server's clock.)
package quota

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// DefaultMargin is the slot stretch of a Config that sets none.
const DefaultMargin = 0.08

// Config configures a Pacer.
type Config struct {
	Rate       float64       // sends per second for the whole group; > 0
	Partitions int32         // partitions of the consumed topic; > 0
	Margin     float64       // slot stretch; default DefaultMargin
	Tolerance  time.Duration // how late in its slot a send may start; default 10ms, less than Margin seconds
	Now        func() time.Time
}

// Pacer hands out the slots of the partitions a member owns. It is safe
// for concurrent use.
type Pacer struct {
	rate       float64
	slot       time.Duration
	partitions int64
	tolerance  time.Duration
	now        func() time.Time

	mu       sync.Mutex
	owned    map[int32]bool
	changed  chan struct{} // closed when owned changes
	reserved int64         // last slot handed out
}

// New returns a pacer that owns no partition yet.
func New(cfg Config) (*Pacer, error) {
	if cfg.Rate <= 0 || cfg.Partitions <= 0 {
		return nil, fmt.Errorf("quota: rate %v and partitions %d must be positive", cfg.Rate, cfg.Partitions)
	}
	if cfg.Margin == 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = 10 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if float64(time.Second)*cfg.Margin <= float64(cfg.Tolerance) {
		return nil, fmt.Errorf("quota: tolerance %v is not less than the margin %v of a second", cfg.Tolerance, cfg.Margin)
	}
	return &Pacer{rate: cfg.Rate, slot: time.Duration(float64(time.Second) * (1 + cfg.Margin) / cfg.Rate), partitions: int64(cfg.Partitions),
		tolerance: cfg.Tolerance, now: cfg.Now, owned: map[int32]bool{}, changed: make(chan struct{})}, nil
}

// Slot is the length of one slot.
func (p *Pacer) Slot() time.Duration { return p.slot }

// Rate is the group's quota: sends per second for every member together.
func (p *Pacer) Rate() float64 { return p.rate }

// Share is this member's part of the quota, in sends per second: the
// group's rate times the share of the partitions it owns (0 with none).
// The members' shares sum to Rate once every partition is assigned.
func (p *Pacer) Share() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate * float64(len(p.owned)) / float64(p.partitions)
}

// Assign records partitions the member now owns.
func (p *Pacer) Assign(partitions []int32) { p.set(partitions, true) }

// Release records partitions the member no longer owns. Call it once the
// member stopped sending for them, before the group hands them on.
func (p *Pacer) Release(partitions []int32) { p.set(partitions, false) }

func (p *Pacer) set(partitions []int32, own bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitions {
		if own {
			p.owned[part] = true
		} else {
			delete(p.owned, part)
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// Owned lists the partitions the member owns.
func (p *Pacer) Owned() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int32
	for part := range p.owned {
		out = append(out, part)
	}
	slices.Sort(out)
	return out
}

// Wait blocks until the start of the member's next free slot and returns
// it; the caller sends at once.
func (p *Pacer) Wait(ctx context.Context) (time.Time, error) {
	for {
		start, changed, ok := p.reserve()
		if ok {
			if d := start.Sub(p.now()); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return time.Time{}, ctx.Err()
				case <-t.C:
				}
			}
			if p.now().Sub(start) <= p.tolerance {
				return start, nil
			}
			continue // descheduled past it: another slot
		}
		select { // no partition owned: wait for an assignment
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-changed:
		}
	}
}

// reserve takes the next owned slot that is not past.
func (p *Pacer) reserve() (time.Time, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.owned) == 0 {
		return time.Time{}, p.changed, false
	}
	now := p.now()
	s := now.UnixNano() / int64(p.slot)
	if now.Sub(time.Unix(0, s*int64(p.slot))) > p.tolerance {
		s++
	}
	s = max(s, p.reserved+1)
	for !p.owned[int32(s%p.partitions)] {
		s++
	}
	p.reserved = s
	return time.Unix(0, s*int64(p.slot)), p.changed, true
}

// MostInWindow is the most of times that fall in any one half-open window
// [t, t+window): a quota of n per window holds over times if it is ≤ n.
// Times exactly window apart are in different windows. It is 0 for no
// times or a window ≤ 0. times is not modified.
func MostInWindow(times []time.Time, window time.Duration) int {
	if window <= 0 || len(times) == 0 {
		return 0
	}
	sorted := slices.Clone(times)
	slices.SortFunc(sorted, time.Time.Compare)
	most, j := 0, 0
	for i := range sorted {
		for sorted[i].Sub(sorted[j]) >= window {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
