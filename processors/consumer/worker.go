package consumer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/tracing"
)

// worker handles the records of one partition, in order, for as long as
// the partition is assigned.
type worker struct {
	c    *Consumer
	cl   *kgo.Client
	tp   tp
	stop chan struct{} // closed to release the partition
	done chan struct{} // closed once run has returned
	wake chan struct{} // records were queued

	mu       sync.Mutex
	queue    []*kgo.Record
	retrying bool // the head record failed and waits for a retry
	paused   bool // fetching of the partition is paused by this worker
}

func newWorker(c *Consumer, cl *kgo.Client, k tp) *worker {
	return &worker{c: c, cl: cl, tp: k, stop: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// push queues records polled for the partition. It never blocks: once the
// queue holds MaxBuffered records, fetching the partition pauses instead.
func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	w.updatePause()
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// updatePause pauses fetching the partition while its head record is being
// retried or its queue is full, and resumes it once neither holds and the
// queue is down to half. Called with w.mu held.
func (w *worker) updatePause() {
	full := w.c.cfg.MaxBuffered
	want := w.retrying || len(w.queue) >= full || (w.paused && len(w.queue) > full/2)
	if want == w.paused {
		return
	}
	w.paused = want
	p := map[string][]int32{w.tp.topic: {w.tp.partition}}
	if want {
		w.cl.PauseFetchPartitions(p)
	} else {
		w.cl.ResumeFetchPartitions(p)
	}
}

func (w *worker) setRetrying(r bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.retrying != r {
		w.retrying = r
		w.updatePause()
	}
}

// run handles queued records one by one until the worker is stopped or ctx
// ends, reporting each finished record to the consumer for committing.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	for {
		rec, ok := w.next(ctx)
		if !ok || !w.process(ctx, rec) {
			return
		}
		w.c.finished(w.tp, rec)
	}
}

// next waits for the next queued record; false when the worker must stop.
func (w *worker) next(ctx context.Context) (*kgo.Record, bool) {
	for {
		select {
		case <-w.stop:
			return nil, false
		case <-ctx.Done():
			return nil, false
		default:
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			rec := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.updatePause()
			w.mu.Unlock()
			return rec, true
		}
		w.mu.Unlock()
		select {
		case <-w.stop:
			return nil, false
		case <-ctx.Done():
			return nil, false
		case <-w.wake:
		}
	}
}

// process handles rec, or dead-letters it if it is poison, retrying
// transient failures. It returns true once rec is finished, false if the
// worker was stopped (or ctx ended) first: then rec is not finished.
func (w *worker) process(ctx context.Context, rec *kgo.Record) bool {
	defer w.setRetrying(false)
	var err error
	for attempt := 0; ; attempt++ {
		err = w.handle(ctx, rec)
		if err == nil {
			if attempt > 0 {
				w.c.log.Info("handled after retries", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "attempts", attempt+1)
			}
			return true
		}
		if errors.Is(err, eventlog.ErrPoison) {
			break
		}
		if !w.wait(ctx, rec, attempt, "handling failed", err) {
			return false
		}
	}
	failed := time.Now()
	for attempt := 0; ; attempt++ {
		// A fresh record each time: kgo keeps the first attempt's
		// context (and partition, offset) in a produced record.
		perr := w.produce(ctx, eventlog.DeadLetter(rec, w.c.cfg.Group, err, failed))
		if perr == nil {
			break
		}
		if !w.wait(ctx, rec, attempt, "dead-letter write failed", perr) {
			return false
		}
	}
	w.c.log.Error("poison record sent to the dead-letter topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
	return true
}

// handle decodes rec and calls the handler, under a consumer span.
func (w *worker) handle(ctx context.Context, rec *kgo.Record) (err error) {
	ctx, span := tracing.StartConsumer(ctx, w.c.tracer, w.c.cfg.Group, rec)
	defer func() { tracing.End(span, err) }()
	env, err := w.c.cfg.Serde.Read(ctx, rec)
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.String("shop.event_type", env.Meta.Type), attribute.String("shop.event_id", env.Meta.EventID))
	err = w.c.cfg.Handler(ctx, env)
	for _, p := range w.c.cfg.Permanent {
		if errors.Is(err, p) {
			return Permanent(err)
		}
	}
	return err
}

func (w *worker) produce(ctx context.Context, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return w.cl.ProduceSync(ctx, rec).FirstErr()
}

// wait pauses the partition and sleeps before retry number attempt+1; it
// returns false, without waiting, if the worker is stopped or ctx ends.
func (w *worker) wait(ctx context.Context, rec *kgo.Record, attempt int, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	w.setRetrying(true)
	d := backoff(w.c.cfg.MinBackoff, w.c.cfg.MaxBackoff, attempt)
	w.c.log.Warn(what+"; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
		"attempt", attempt+1, "backoff", d, "err", err)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// backoff is the wait before retry number attempt+1: a random duration
// between half and all of min(lo·2^attempt, hi).
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
