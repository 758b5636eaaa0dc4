package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lockKey is the advisory lock that elects the active relay.
const lockKey = 0x5d0b_0002

// RelayConfig tunes a Relay; zero values take the defaults.
type RelayConfig struct {
	BatchSize    int           // rows per batch; default 500
	PollInterval time.Duration // fallback poll when no notification comes; default 1s
	Logger       *slog.Logger
}

// Relay publishes the outbox to Kafka. Run it in every instance that should
// be able to take over; only the one holding the lock publishes.
type Relay struct {
	pool   *pgxpool.Pool
	client *kgo.Client
	cfg    RelayConfig
	log    *slog.Logger
	wake   chan struct{} // Notify in this process: records committed
}

// NewRelay returns a relay publishing with client, which must be an
// idempotent producer (franz-go's default) so that retries inside one batch
// neither duplicate nor reorder records.
func NewRelay(pool *pgxpool.Pool, client *kgo.Client, cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Relay{pool: pool, client: client, cfg: cfg, log: log.With("component", "outbox-relay"), wake: make(chan struct{}, 1)}
}

// Run publishes until ctx ends. It returns nil on cancellation; transient
// failures (database or broker down) are logged and retried with backoff.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("relay interrupted; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// lead waits for the advisory lock, then publishes while it holds it, on
// the session that holds it: a lost session fails the next batch, so no
// relay publishes without the lock.
func (r *Relay) lead(ctx context.Context) error {
	pc, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The session (and so the lock) must not go back to the pool: close it.
	conn := pc.Hijack()
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&got); err != nil {
			return fmt.Errorf("relay lock: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.PollInterval):
		}
	}
	r.log.Info("relay is active")
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	notifiers.Lock()
	notifiers.active[r.pool] = r
	notifiers.Unlock()
	defer func() {
		notifiers.Lock()
		if notifiers.active[r.pool] == r {
			delete(notifiers.active, r.pool)
		}
		notifiers.Unlock()
	}()
	for {
		for {
			n, err := r.publishBatch(ctx, conn)
			if err != nil {
				return err
			}
			if n < r.cfg.BatchSize {
				break
			}
		}
		if err := r.wait(ctx, conn); err != nil {
			return err
		}
	}
}

// wakeUp makes the relay's wait return (Notify, in this process).
func (r *Relay) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// wait returns on a wake-up from this process, a notification from another
// one, or after PollInterval.
func (r *Relay) wait(ctx context.Context, conn *pgx.Conn) error {
	select {
	case <-r.wake:
		return nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
	defer cancel()
	// A wake-up ends the wait by cancelling it (a cancelled wait leaves the
	// session usable: pgconn turns it into a read deadline). The watcher
	// is done before wait returns, so a wake-up it took came before the
	// next batch's claim, which sees the rows that caused it.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-r.wake:
			cancel()
		case <-wctx.Done():
		}
	}()
	_, err := conn.WaitForNotification(wctx)
	cancel()
	<-watched
	if err != nil && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("wait for notification: %w", err)
	}
	return nil
}

// claim deletes up to $1 rows, the oldest first, in the relay's open
// transaction, returning them; the delete commits once they are published.
const claim = `DELETE FROM outbox.records WHERE id = ANY(ARRAY(
	SELECT id FROM outbox.records ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
	RETURNING id, topic, key, value, headers`

// publishBatch publishes up to BatchSize rows in id order and deletes them
// once every record of the batch is acknowledged, in two round trips:
//
//  1. one pipelined batch: BEGIN; SET LOCAL synchronous_commit = off; the
//     claim, which deletes the rows and returns them;
//  2. after the broker acknowledged every record, COMMIT (or ROLLBACK on
//     any failure, which puts the rows back).
//
// The delete's commit does not wait for its WAL flush: if PostgreSQL
// crashed before flushing it, the rows would come back and be published
// again, which at-least-once delivery allows; it never loses a row, and it
// keeps the relay's commits from queueing behind the commands' flushes.
func (r *Relay) publishBatch(ctx context.Context, conn *pgx.Conn) (n int, err error) {
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`)
	b.Queue(claim, r.cfg.BatchSize)
	br := conn.SendBatch(ctx, b)
	defer func() {
		if err != nil && conn.PgConn().TxStatus() != 'I' && !conn.IsClosed() {
			_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	type row struct {
		id  int64
		rec *kgo.Record
	}
	var rows []row
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		var rs pgx.Rows
		rs, err = br.Query()
		for err == nil && rs.Next() {
			var id int64
			var hj []byte
			rec := &kgo.Record{}
			if err = rs.Scan(&id, &rec.Topic, &rec.Key, &rec.Value, &hj); err != nil {
				err = fmt.Errorf("scan outbox: %w", err)
				break
			}
			var hs []header
			if err = json.Unmarshal(hj, &hs); err != nil {
				err = fmt.Errorf("outbox row %d headers: %w", id, err)
				break
			}
			rec.Headers = make([]kgo.RecordHeader, len(hs))
			for i, h := range hs {
				rec.Headers[i] = kgo.RecordHeader{Key: h.K, Value: h.V}
			}
			rows = append(rows, row{id, rec})
		}
		rs.Close()
		if err == nil {
			err = rs.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	if len(rows) == 0 {
		_, err = conn.Exec(ctx, `COMMIT`)
		return 0, err
	}
	// DELETE … RETURNING returns rows in no set order.
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	// Produce the whole batch, then Flush: the batch is all there is to
	// send, so waiting out the producer's linger would only add latency.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	wg.Add(len(rows))
	for _, rw := range rows {
		r.client.Produce(ctx, rw.rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	ferr := r.client.Flush(ctx)
	wg.Wait()
	if firstErr == nil {
		firstErr = ferr
	}
	if firstErr != nil {
		return 0, fmt.Errorf("publish %d records: %w", len(rows), firstErr)
	}
	if _, err = conn.Exec(ctx, `COMMIT`); err != nil {
		return 0, fmt.Errorf("delete published rows: %w", err)
	}
	r.log.Debug("published", "records", len(rows), "last_id", rows[len(rows)-1].id)
	return len(rows), nil
}
