package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	return &Relay{pool: pool, client: client, cfg: cfg, log: log.With("component", "outbox-relay")}
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

// lead waits for the advisory lock, then publishes while it holds it.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The session (and so the lock) must not go back to the pool: close it.
	defer func() { _ = conn.Hijack().Close(context.WithoutCancel(ctx)) }()
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
	for {
		for {
			n, err := r.publishBatch(ctx)
			if err != nil {
				return err
			}
			if n < r.cfg.BatchSize {
				break
			}
		}
		wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("wait for notification: %w", err)
		}
		// Keep the lock session alive and check we still own it: a lost
		// session would have let another relay take over.
		if err := conn.Ping(ctx); err != nil {
			return fmt.Errorf("relay session: %w", err)
		}
	}
}

// publishBatch publishes up to BatchSize rows in id order and deletes them
// once every record of the batch is acknowledged.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	rows, err := r.pool.Query(ctx, `SELECT id, topic, key, value, headers FROM outbox.records ORDER BY id LIMIT $1`, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var ids []int64
	var recs []*kgo.Record
	for rows.Next() {
		var id int64
		var hj []byte
		rec := &kgo.Record{}
		if err := rows.Scan(&id, &rec.Topic, &rec.Key, &rec.Value, &hj); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan outbox: %w", err)
		}
		var hs []header
		if err := json.Unmarshal(hj, &hs); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox row %d headers: %w", id, err)
		}
		for _, h := range hs {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.K, Value: h.V})
		}
		ids = append(ids, id)
		recs = append(recs, rec)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if err := r.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("publish %d records: %w", len(recs), err)
	}
	if _, err := r.pool.Exec(ctx, `DELETE FROM outbox.records WHERE id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("delete published rows: %w", err)
	}
	r.log.Debug("published", "records", len(recs), "last_id", ids[len(ids)-1])
	return len(recs), nil
}
