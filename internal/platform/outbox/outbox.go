// Package outbox is the transactional outbox between the PostgreSQL write
// model and the Kafka event log.
//
// Append (or Queue, in a pipelined batch) writes records in the caller's
// transaction, so a committed command always has its events stored, and a
// rolled-back one has none. The Relay publishes them: it wakes when a
// writer calls Notify after its commit (directly when the relay runs in the
// same process, by LISTEN/NOTIFY otherwise) and polls as a fallback. Per
// batch it claims and deletes up to BatchSize rows in one transaction on
// its session, publishes them with franz-go's idempotent producer, and
// commits the delete only after the broker acknowledged every record (a
// failure rolls it back, and the rows stay). Delivery is at least once (a
// crash between acknowledgement and commit republishes the batch; consumers
// dedupe by event id) and ordered per
// aggregate: rows are read in id order, and a command on an aggregate takes
// its row lock before appending, so a later event of the same aggregate
// always has a higher id and becomes visible after the earlier one.
// One relay is active per outbox at a time (a PostgreSQL advisory lock held
// on its session); the others wait, and take over when it dies.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/pgdb"
)

// Channel is the LISTEN/NOTIFY channel of the outbox.
const Channel = "shop_outbox"

// Table is the outbox: the one table every context appends to and the
// relay publishes from.
const Table = "outbox.records"

// Migrations creates the outbox schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{{Context: "outbox", Version: 1, SQL: `
		CREATE SCHEMA IF NOT EXISTS outbox;
		CREATE TABLE outbox.records (
			id         bigserial PRIMARY KEY,
			topic      text  NOT NULL,
			key        bytea NOT NULL,
			value      bytea NOT NULL,
			headers    jsonb NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now()
		);`}}
}

// header is the stored form of a record header.
type header struct {
	K string `json:"k"`
	V []byte `json:"v"`
}

// Queue queues in b the inserts of recs into the outbox, one statement per
// record, for a command that sends its writes as one pipelined batch (see
// aggregate.Store.Update). The caller calls Notify once that batch has
// committed.
func Queue(b *pgx.Batch, recs ...*kgo.Record) error {
	for _, r := range recs {
		hs := make([]header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = header{K: h.Key, V: h.Value}
		}
		hj, err := json.Marshal(hs)
		if err != nil {
			return fmt.Errorf("outbox headers: %w", err)
		}
		b.Queue(`INSERT INTO outbox.records (topic, key, value, headers) VALUES ($1, $2, $3, $4)`, r.Topic, r.Key, r.Value, hj)
	}
	return nil
}

// Append stores records in tx, in one pipelined batch. Call Notify after
// tx commits to wake the relay at once; without it, the relay finds them
// at its next poll.
//
// (The relay is not notified from within the transaction, with NOTIFY: a
// transaction that notifies takes a database-wide lock before its commit
// and holds it until the commit is flushed, which serialises every such
// commit and its WAL flush, and so defeats group commit.)
func Append(ctx context.Context, tx pgx.Tx, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	if err := Queue(batch, recs...); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("append to outbox: %w", err)
	}
	return nil
}

// Notify tells the relay that records were committed to the outbox of
// pool's database. It does not wait. When the active relay runs in this
// process on the same pool, it is woken directly; otherwise a NOTIFY on
// Channel is sent on its own (read-only, so flush-free) transaction, at
// most one at a time per pool: commits that arrive while one is in flight
// share the next one.
func Notify(pool *pgxpool.Pool) {
	notifiers.Lock()
	defer notifiers.Unlock()
	if r := notifiers.active[pool]; r != nil {
		r.wakeUp()
		return
	}
	if n, busy := notifiers.sending[pool]; busy {
		*n = true
		return
	}
	again := new(bool)
	notifiers.sending[pool] = again
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = pool.Exec(ctx, `SELECT pg_notify($1, '')`, Channel) // best effort: the relay polls too
			cancel()
			notifiers.Lock()
			if !*again {
				delete(notifiers.sending, pool)
				notifiers.Unlock()
				return
			}
			*again = false
			notifiers.Unlock()
		}
	}()
}

// notifiers are the relays active in this process, by pool, and the pools
// with a NOTIFY in flight (true: send another after it).
var notifiers = struct {
	sync.Mutex
	active  map[*pgxpool.Pool]*Relay
	sending map[*pgxpool.Pool]*bool
}{active: map[*pgxpool.Pool]*Relay{}, sending: map[*pgxpool.Pool]*bool{}}

// Pending counts the records not yet published.
func Pending(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM `+Table).Scan(&n)
	return n, err
}
