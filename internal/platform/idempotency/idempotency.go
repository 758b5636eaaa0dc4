// Package idempotency makes a retried command harmless: a request that
// carries an Idempotency-Key has its answer recorded in the same PostgreSQL
// transaction as its effect, so a retry with the same key and the same
// request gets that answer again and does nothing, and a retry with the
// same key and another request is refused (422).
//
// Guarantee: for one key, at most one effect commits. Two concurrent
// requests with one key both run, but the primary key of the keys table
// lets only one transaction commit; the other rolls back and answers with
// the winner's recorded result. Refused commands (4xx) record nothing: the
// key can be used again, as nothing happened.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/pgdb"
)

// Migrations creates the keys table.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{{Context: "idempotency", Version: 1, SQL: `
		CREATE SCHEMA IF NOT EXISTS idempotency;
		CREATE TABLE idempotency.keys (
			key        text PRIMARY KEY,
			hash       text NOT NULL,
			status     int NOT NULL,
			location   text NOT NULL DEFAULT '',
			body       jsonb,
			created_at timestamptz NOT NULL DEFAULT now());
		CREATE INDEX keys_created_at ON idempotency.keys (created_at);`}}
}

// errTaken is what Record returns when another transaction recorded the key
// first; the middleware answers with that one's result.
var errTaken = errors.New("idempotency key recorded by a concurrent request")

// ErrReused is a key sent again with another request.
var ErrReused = command.Invalid("Idempotency-Key", "was already used for another request")

// Record stores a command's result under its key, in the command's
// transaction tx. Without a key in meta it does nothing.
func Record(ctx context.Context, tx pgx.Tx, meta command.Meta, res command.Result) error {
	b := &pgx.Batch{}
	if err := Queue(b, meta, res); err != nil || b.Len() == 0 {
		return err
	}
	_, err := tx.Exec(ctx, b.QueuedQueries[0].SQL, b.QueuedQueries[0].Arguments...)
	return Check(err)
}

// Queue queues in b the statement that stores a command's result under its
// key, for a command that sends its writes as one pipelined batch; Check
// maps that statement's error. Without a key in meta it queues nothing.
func Queue(b *pgx.Batch, meta command.Meta, res command.Result) error {
	k := meta.Idempotency
	if k == nil {
		return nil
	}
	body, err := json.Marshal(res.Body)
	if err != nil {
		return fmt.Errorf("idempotency: encode result: %w", err)
	}
	b.Queue(`INSERT INTO idempotency.keys (key, hash, status, location, body) VALUES ($1, $2, $3, $4, $5)`,
		k.Key, k.Hash, res.Status, res.Location, body)
	return nil
}

// Check maps the error of the statement Queue queued: the key recorded by
// a concurrent request is errTaken, which the middleware answers with that
// request's result.
func Check(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return errTaken
	}
	return err
}

// Middleware answers a request whose key is known with the recorded result
// (Replayed set), refuses a known key with another hash (ErrReused), and
// otherwise runs the command, which records the key through Record. A
// command's key is looked up in the database dbOf names for it: the one
// its handler records the key in, in the same transaction as its effect.
func Middleware(dbOf func(command.Command) *pgxpool.Pool) command.Middleware {
	return func(next command.Handler) command.Handler {
		return func(ctx context.Context, meta command.Meta, cmd command.Command) (command.Result, error) {
			if meta.Idempotency == nil {
				return next(ctx, meta, cmd)
			}
			db := dbOf(cmd)
			if res, found, err := lookup(ctx, db, meta.Idempotency); found || err != nil {
				return res, err
			}
			res, err := next(ctx, meta, cmd)
			if errors.Is(err, errTaken) {
				res, _, err = lookup(ctx, db, meta.Idempotency)
			}
			return res, err
		}
	}
}

func lookup(ctx context.Context, db *pgxpool.Pool, k *command.IdempotencyKey) (command.Result, bool, error) {
	var hash string
	var body json.RawMessage
	res := command.Result{Replayed: true}
	err := db.QueryRow(ctx, `SELECT hash, status, location, body FROM idempotency.keys WHERE key = $1`, k.Key).
		Scan(&hash, &res.Status, &res.Location, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Result{}, false, nil
	}
	if err != nil {
		return command.Result{}, false, fmt.Errorf("idempotency: look up key: %w", err)
	}
	if hash != k.Hash {
		return command.Result{}, true, ErrReused
	}
	res.Body = body
	return res, true, nil
}
