package loadtest

import (
	"context"
	"sync"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

// orderEnds counts the orders that reached each terminal state.
type orderEnds struct{ confirmed, cancelled int64 }

// drain waits, after the load, until the pipeline has done all its work:
// every accepted order is terminal as readers see it (confirmed and
// emailed, or cancelled) and no consumer group lags. It gives up after
// cfg.DrainTimeout; the invariants are checked either way.
func drain(ctx context.Context, cfg Config, smp *sampler, orders []string, out *progress) (report.Drain, orderEnds) {
	began := time.Now()
	d := report.Drain{Timeout: cfg.DrainTimeout}
	pending := append([]string(nil), orders...)
	var ends orderEnds
	dctx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
	defer cancel()
	var ordersDone time.Time // when every order was first seen terminal
	for {
		var conf, canc int64
		pending, conf, canc = stillPending(dctx, smp, pending, true)
		ends.confirmed += conf
		ends.cancelled += canc
		if len(pending) == 0 && ordersDone.IsZero() {
			ordersDone = time.Now()
		}
		groups, at := smp.lastLag()
		var lagging int64
		for _, l := range groups {
			lagging += l
		}
		// Drained: every order terminal, and a lag sample taken after that
		// (not an older one) says no group lags.
		if !ordersDone.IsZero() && groups != nil && at.After(ordersDone) && lagging == 0 {
			d.Drained = true
			break
		}
		out.status("draining %4.0fs: %d of %d orders not yet terminal | lag %s", time.Since(began).Seconds(), len(pending), len(orders), lagLine(groups))
		select {
		case <-dctx.Done():
			d.Elapsed = time.Since(began)
			out.line("drain: gave up after %v with %d orders not terminal, lag %s", d.Elapsed.Round(time.Millisecond), len(pending), lagLine(groups))
			return d, ends
		case <-time.After(time.Second):
		}
	}
	d.Elapsed = time.Since(began)
	out.line("drained in %v: %d orders confirmed, %d cancelled, no consumer lag", d.Elapsed.Round(time.Millisecond), ends.confirmed, ends.cancelled)
	return d, ends
}

// stillPending reads each order (16 at a time) and returns those not yet
// terminal, with the number found confirmed and cancelled. A confirmed
// order is terminal once its invoice is emailed, or at once without
// needEmail.
func stillPending(ctx context.Context, smp *sampler, ids []string, needEmail bool) (pending []string, confirmed, cancelled int64) {
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var o struct {
				Status  string `json:"status"`
				Invoice *struct {
					EmailedAt *time.Time `json:"emailed_at"`
				} `json:"invoice"`
			}
			err := smp.get(ctx, smp.c.base+"/orders/"+id, &o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && o.Status == "cancelled":
				cancelled++
			case err == nil && o.Status == "confirmed" && (!needEmail || o.Invoice != nil && o.Invoice.EmailedAt != nil):
				confirmed++
			default:
				pending = append(pending, id)
			}
		})
	}
	wg.Wait()
	return pending, confirmed, cancelled
}
