package loadtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// tick is how often the scheduler releases the requests that came due.
const tick = 2 * time.Millisecond

// drive sends requests at the profile's rate from start until its duration
// ends, open loop: a request is due at its time whether or not earlier ones
// were answered, as real shoppers do not wait for each other. workers
// bound the requests in flight; a request that starts more than a second
// after it was due is counted late, which says the generator (or the
// client machine) and not the shop was the bottleneck.
//
// The sequence of actions and their choices follows p.Seed alone, so two
// runs with one seed ask the same things in the same order.
func drive(ctx context.Context, p Profile, w *world, c *client, workers int, start time.Time) {
	jobs := make(chan job, 1<<16)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if time.Since(start)-j.at > time.Second {
					c.rec.Late()
				}
				w.run(ctx, c, j)
			}
		})
	}
	next := chooser(p.Seed)
	if p.Mix == MixOrders {
		all := next
		next = func(at time.Duration) job { j := all(at); j.action = "order"; return j }
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	sent := 0
loop:
	for {
		now := time.Since(start)
		for due := int(p.Arrivals(now) + 1e-9); sent < due; sent++ { // 1e-9: 0.1/s × 10 s is 1, not 0.999…
			j := next(now)
			select {
			case jobs <- j:
			case <-ctx.Done():
				break loop
			}
		}
		if now >= p.Duration {
			break
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
}

// chooser returns the seeded sequence of jobs: each call draws the next
// action and its choices.
func chooser(seed int64) func(at time.Duration) job {
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	return func(at time.Duration) job {
		return job{at: at, action: pick(rng), r1: rng.Uint64(), r2: rng.Uint64(), r3: rng.Float64()}
	}
}
