package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"shopstream/internal/platform/command"
)

// DefaultPollInterval is how often a Scheduler looks for due deadlines.
const DefaultPollInterval = time.Second

// Scheduler fires the saga's due deadlines. Any number of instances may
// run on one database.
//
// Guarantees:
//   - Durable: a deadline is a row of saga.deadlines, written with the
//     saga's state in the step that set it; a restart loses none, and one
//     that came due while nothing ran fires at the next poll.
//   - Once: firing is one transaction of the saga's own that claims the
//     order's saga row (FOR UPDATE … SKIP LOCKED: another scheduler, or a
//     step of that order in progress, makes it skip the row), marks the
//     deadline fired (only if it still is pending), runs the compensation
//     Decide returns and saves the state. A crash before the commit leaves
//     the deadline pending: the next scheduler fires it again, whose
//     commands then change only what the first did not get to.
//   - A deadline whose compensation fails (a context unreachable) is left
//     pending and tried again after a poll interval; the others go on.
type Scheduler struct {
	saga     *Saga
	interval time.Duration
	log      *slog.Logger
}

// Scheduler returns the saga's deadline scheduler, polling every interval
// (0: DefaultPollInterval).
func (s *Saga) Scheduler(interval time.Duration) *Scheduler {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	return &Scheduler{saga: s, interval: interval, log: s.log.With("component", "saga-scheduler")}
}

// Run fires due deadlines until ctx ends.
func (sc *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(sc.interval)
	defer t.Stop()
	for {
		if _, err := sc.FireDue(ctx); err != nil && ctx.Err() == nil {
			sc.log.Warn("firing deadlines", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// FireDue fires every deadline due now that no other instance is firing,
// and returns how many it fired. It returns the first error after trying
// every other due deadline.
func (sc *Scheduler) FireDue(ctx context.Context) (int, error) {
	var failed []string // orders whose deadline failed this round: not tried again in it
	var first error
	n := 0
	for {
		orderID, fired, err := sc.fireOne(ctx, failed)
		switch {
		case err != nil && orderID == "":
			return n, errors.Join(first, err)
		case err != nil:
			sc.log.Warn("deadline not fired; tried again later", "order_id", orderID, "err", err)
			failed = append(failed, orderID)
			first = cmpErr(first, err)
		case orderID == "":
			return n, first
		case fired:
			n++
		}
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// fireOne claims one due deadline (of an order not in skip) and fires it.
// orderID is empty when none is due.
func (sc *Scheduler) fireOne(ctx context.Context, skip []string) (orderID string, fired bool, err error) {
	s := sc.saga
	if skip == nil {
		skip = []string{} // = ANY(NULL) would match nothing
	}
	err = pgx.BeginFunc(ctx, s.own, func(tx pgx.Tx) error {
		var kind string
		err := tx.QueryRow(ctx, `SELECT o.id, d.kind FROM saga.deadlines d JOIN saga.orders o ON o.id = d.order_id
			WHERE d.fired_at IS NULL AND d.due_at <= now() AND NOT (d.order_id = ANY($1))
			ORDER BY d.due_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED`, skip).Scan(&orderID, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim a due deadline: %w", err)
		}
		// The row is ours; the deadline may have fired (or been dropped)
		// since the statement's snapshot: the update tells.
		tag, err := tx.Exec(ctx, `UPDATE saga.deadlines SET fired_at = now() WHERE order_id = $1 AND kind = $2 AND fired_at IS NULL`, orderID, kind)
		if err != nil {
			return fmt.Errorf("mark deadline of order %s fired: %w", orderID, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		state, version, err := load(ctx, tx, orderID)
		if err != nil {
			return err
		}
		meta := command.Meta{CorrelationID: orderID, CausationID: "deadline:" + kind + ":" + orderID}
		if _, err := s.advance(ctx, tx, meta, orderID, state, version, Fired{Kind: kind}); err != nil {
			return err
		}
		fired = true
		sc.log.Info("deadline fired", "order_id", orderID, "kind", kind)
		return nil
	})
	if err != nil {
		fired = false
	}
	return orderID, fired, err
}

// Deadlines returns an order's deadlines: kind → due time, and whether it
// fired.
func (s *Saga) Deadlines(ctx context.Context, orderID string) (map[string]Fire, error) {
	rows, err := s.own.Query(ctx, `SELECT kind, due_at, fired_at FROM saga.deadlines WHERE order_id = $1`, orderID)
	if err != nil {
		return nil, fmt.Errorf("deadlines of order %s: %w", orderID, err)
	}
	out := map[string]Fire{}
	var kind string
	var f Fire
	_, err = pgx.ForEachRow(rows, []any{&kind, &f.Due, &f.Fired}, func() error { out[kind] = f; f = Fire{}; return nil })
	return out, err
}

// Fire is one deadline of an order: when it is due, and when it fired
// (nil: pending).
type Fire struct {
	Due   time.Time
	Fired *time.Time
}
