// Package aggregate stores the write-side state of aggregates in
// PostgreSQL and appends their events to the outbox, in one transaction.
//
// A state row is (id, version, state as JSON). Update reads the row, lets a
// pure decide function compute the new state and events, and writes the
// row only if its version is still the one read (optimistic concurrency);
// a concurrent update makes the command fail with command.ErrVersion, which
// the command bus retries a bounded number of times. Several aggregates can
// change in one transaction (Transact), with the request's idempotency key. The version of an aggregate counts its events: each event carries
// the aggregate version it produced, which read models use as an
// idempotency guard.
package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/eventlog"
	"shopstream/internal/idempotency"
	"shopstream/internal/outbox"
	"shopstream/internal/pgdb"
	"shopstream/internal/tracing"
	"shopstream/producers/command"
	"shopstream/schemas"
)

// PostgreSQL's SQLSTATEs of a constraint refusing a row.
const (
	uniqueViolation = "23505"
	checkViolation  = "23514"
)

// Migration is the first migration of a context whose aggregates live in
// one state table: it creates the context's schema and the table
// "<context>.<table>".
func Migration(context, table string) pgdb.Migration {
	return pgdb.Migration{Context: context, Version: 1,
		SQL: fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s; %s", context, TableSQL(context+"."+table))}
}

// TableSQL is the DDL of a state table, for a context's migrations.
func TableSQL(table string) string {
	return fmt.Sprintf(`CREATE TABLE %s (
		id         text PRIMARY KEY,
		version    bigint NOT NULL CHECK (version > 0),
		state      jsonb NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now())`, table)
}

// Store keeps the aggregates of one type.
type Store[S any] struct {
	pool   *pgxpool.Pool
	serde  *eventlog.Serde
	table  string // schema-qualified table created with TableSQL
	source string // CloudEvents source, e.g. shopstream/catalog
	now    func() time.Time
}

// NewStore returns a store of aggregates of one type. Each event goes to
// its type's topic in the schema catalogue, keyed by the aggregate id.
func NewStore[S any](pool *pgxpool.Pool, serde *eventlog.Serde, table, source string) *Store[S] {
	return &Store[S]{pool: pool, serde: serde, table: table, source: source, now: time.Now}
}

// Decide is the pure part of a command: given the current state (the zero
// S and version 0 when the aggregate does not exist), the new state and the
// events, or an error and no change.
type Decide[S any] func(state S, version int64) (S, []schemas.Event, error)

// Decision adapts a context's pure Decide and Evolve to the store: the
// events decide returns, and the state evolved by them.
func Decision[S any](decide func(S, int64) ([]schemas.Event, error), evolve func(S, ...schemas.Event) S) Decide[S] {
	return func(state S, version int64) (S, []schemas.Event, error) {
		events, err := decide(state, version)
		return evolve(state, events...), events, err
	}
}

// Transact runs fn in one PostgreSQL transaction and records the result
// under the request's idempotency key (if any) in that same transaction, so
// a command's state, events and key commit together or not at all. fn
// applies one or more aggregates with Store.Apply.
func Transact(ctx context.Context, pool *pgxpool.Pool, meta command.Meta, fn func(tx pgx.Tx) (command.Result, error)) (command.Result, error) {
	var res command.Result
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if res, err = fn(tx); err != nil {
			return err
		}
		return idempotency.Record(ctx, tx, meta, res)
	})
	if err != nil {
		return command.Result{}, err
	}
	return res, nil
}

// Rule binds a context's pure Decide(state, version, command) and Evolve
// once, giving the Decide of each command.
func Rule[S, C any](decide func(S, int64, C) ([]schemas.Event, error), evolve func(S, ...schemas.Event) S) func(C) Decide[S] {
	return func(cmd C) Decide[S] {
		return Decision(func(state S, version int64) ([]schemas.Event, error) { return decide(state, version, cmd) }, evolve)
	}
}

// Exec is Update for a command without an answer: a processor's.
func (s *Store[S]) Exec(ctx context.Context, id string, meta command.Meta, decide Decide[S]) error {
	_, err := s.Update(ctx, id, meta, decide, func(S, int64) command.Result { return command.Result{} })
	return err
}

// Update is the common command: Apply decide to one aggregate in its own
// transaction (Transact), answering with result of the new state.
func (s *Store[S]) Update(ctx context.Context, id string, meta command.Meta, decide Decide[S], result func(S, int64) command.Result) (command.Result, error) {
	return Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		state, version, err := s.Apply(ctx, tx, id, meta, decide)
		if err != nil {
			return command.Result{}, err
		}
		return result(state, version), nil
	})
}

// Apply runs decide on aggregate id within tx: it loads the state, saves
// the new one if its version has not changed meanwhile (command.ErrVersion
// otherwise, for the command bus to retry) and appends the events to the
// outbox. It returns the state and version after the command; a decide that
// returns no event changes nothing.
func (s *Store[S]) Apply(ctx context.Context, tx pgx.Tx, id string, meta command.Meta, decide Decide[S]) (S, int64, error) {
	state, version, _, err := s.load(ctx, tx, id)
	if err != nil {
		return state, version, err
	}
	next, events, err := decide(state, version)
	if err != nil || len(events) == 0 {
		return state, version, err
	}
	old := version
	version += int64(len(events))
	if err := s.save(ctx, tx, id, old, version, next); err != nil {
		return state, old, err
	}
	recs, err := s.records(ctx, id, old, meta, events)
	if err != nil {
		return state, old, err
	}
	return next, version, outbox.Append(ctx, tx, recs...)
}

func (s *Store[S]) save(ctx context.Context, tx pgx.Tx, id string, old, version int64, state S) error {
	raw, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", s.table, id, err)
	}
	var q string
	if old == 0 {
		q = `INSERT INTO ` + s.table + ` (id, version, state) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`
	} else {
		q = `UPDATE ` + s.table + ` SET version = $2, state = $3, updated_at = now() WHERE id = $1 AND version = $4`
	}
	args := []any{id, version, raw}
	if old != 0 {
		args = append(args, old)
	}
	tag, err := tx.Exec(ctx, q, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == uniqueViolation || pgErr.Code == checkViolation) {
		// A constraint of the context (unique, check; not the id: that one
		// is handled by ON CONFLICT) refuses the new state.
		return fmt.Errorf("save %s %s: %s: %w", s.table, id, pgErr.ConstraintName, command.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save %s %s: %w", s.table, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save %s %s at version %d: %w", s.table, id, old, command.ErrVersion)
	}
	return nil
}

func (s *Store[S]) records(ctx context.Context, id string, old int64, meta command.Meta, events []schemas.Event) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, len(events))
	now := s.now().UTC()
	traceparent := meta.TraceParent
	if traceparent == "" { // a command run outside a request or a handler starts a trace of its own
		traceparent = tracing.NewTraceParent()
	}
	for i, ev := range events {
		t, err := s.serde.Catalog().TypeOf(ev)
		if err != nil {
			return nil, err
		}
		value, err := s.serde.Encode(ctx, t.Topic, ev)
		if err != nil {
			return nil, err
		}
		eventID, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		m := eventlog.Metadata{
			EventID: eventID.String(), Type: ev.EventType(), Source: s.source,
			AggregateID: id, AggregateVersion: old + int64(i) + 1, OccurredAt: now,
			CorrelationID: meta.CorrelationID, CausationID: meta.CausationID, TraceParent: traceparent,
		}
		recs[i] = &kgo.Record{Topic: t.Topic, Key: []byte(id), Value: value, Headers: m.Headers()}
	}
	return recs, nil
}

// Load reads an aggregate's state without changing it; found is false when
// it does not exist.
func (s *Store[S]) Load(ctx context.Context, id string) (state S, version int64, found bool, err error) {
	return s.load(ctx, s.pool, id)
}

// load reads a state row through q (the pool or a transaction); an absent
// aggregate is the zero S at version 0.
func (s *Store[S]) load(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) (state S, version int64, found bool, err error) {
	var raw []byte
	err = q.QueryRow(ctx, `SELECT version, state FROM `+s.table+` WHERE id = $1`, id).Scan(&version, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return state, 0, false, nil
	}
	if err != nil {
		return state, 0, false, fmt.Errorf("load %s %s: %w", s.table, id, err)
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		return state, 0, false, fmt.Errorf("decode %s %s: %w", s.table, id, err)
	}
	return state, version, true, nil
}
