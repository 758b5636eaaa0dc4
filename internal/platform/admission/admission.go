// Package admission bounds the work one process runs at once. A Gate has
// a fixed number of slots: a caller that gets one runs and gives it back;
// a caller that finds none free waits at most a given time (or not at
// all) and is then refused, so that a spike is answered at once with a
// refusal instead of piling up until every caller times out.
//
// The command bus sheds commands with a Gate (command.Shed: no wait, 429),
// the gateway its queries and event streams (503 with Retry-After).
package admission

import (
	"context"
	"time"
)

// Gate admits at most its capacity of callers at once. Its methods are
// safe for concurrent use. Waiting callers are admitted in arrival order
// (a Go channel's senders queue first in, first out).
type Gate struct {
	slots chan struct{}
}

// New is a gate of capacity slots; a capacity below 1 is taken as 1.
func New(capacity int) *Gate {
	return &Gate{slots: make(chan struct{}, max(capacity, 1))}
}

// Enter takes a slot and reports true, or reports false when none freed
// within wait (0: none free now) or ctx ended first. Each Enter that
// reports true must be followed by one Leave.
func (g *Gate) Enter(ctx context.Context, wait time.Duration) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Leave gives back the slot of a successful Enter.
func (g *Gate) Leave() { <-g.slots }

// Cap is the gate's capacity: how many callers it admits at once.
func (g *Gate) Cap() int { return cap(g.slots) }

// InFlight is how many callers hold a slot now.
func (g *Gate) InFlight() int { return len(g.slots) }
