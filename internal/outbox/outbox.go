// Package outbox is the transactional outbox between the PostgreSQL write
// model and the Kafka event log.
//
// Append writes records in the caller's transaction, so a committed command
// always has its events stored, and a rolled-back one has none. The Relay
// publishes them: it wakes on LISTEN/NOTIFY (the notification is sent at
// commit) and polls as a fallback, publishes in batches with franz-go's
// idempotent producer, and deletes rows only after the broker acknowledged
// them. Delivery is at least once (a crash between acknowledgement and
// delete republishes the batch; consumers dedupe by event id) and ordered per
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

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/pgdb"
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

// Append stores records in tx and notifies the relay at commit.
func Append(ctx context.Context, tx pgx.Tx, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, r := range recs {
		hs := make([]header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = header{K: h.Key, V: h.Value}
		}
		hj, err := json.Marshal(hs)
		if err != nil {
			return fmt.Errorf("outbox headers: %w", err)
		}
		batch.Queue(`INSERT INTO outbox.records (topic, key, value, headers) VALUES ($1, $2, $3, $4)`, r.Topic, r.Key, r.Value, hj)
	}
	batch.Queue(`SELECT pg_notify($1, '')`, Channel)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("append to outbox: %w", err)
	}
	return nil
}

// Pending counts the records not yet published.
func Pending(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM `+Table).Scan(&n)
	return n, err
}
