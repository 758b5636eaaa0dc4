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
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/platform/tracing"
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
	name   string // the table's name without its schema, which its constraints' names start with
	source string // CloudEvents source, e.g. shopstream/catalog
	now    func() time.Time
}

// NewStore returns a store of aggregates of one type. Each event goes to
// its type's topic in the schema catalogue, keyed by the aggregate id.
func NewStore[S any](pool *pgxpool.Pool, serde *eventlog.Serde, table, source string) *Store[S] {
	name := table[strings.LastIndexByte(table, '.')+1:]
	return &Store[S]{pool: pool, serde: serde, table: table, name: name, source: source, now: time.Now}
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
// applies one or more aggregates with Store.Apply. After the commit the
// outbox relay is woken (outbox.Notify) if fn appended events.
func Transact(ctx context.Context, pool *pgxpool.Pool, meta command.Meta, fn func(tx pgx.Tx) (command.Result, error)) (command.Result, error) {
	var res command.Result
	var appended bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		t := &trackedTx{Tx: tx}
		var err error
		if res, err = fn(t); err != nil {
			return err
		}
		appended = t.appended
		return idempotency.Record(ctx, tx, meta, res)
	})
	if err != nil {
		return command.Result{}, err
	}
	if appended {
		outbox.Notify(pool)
	}
	return res, nil
}

// trackedTx is the transaction Transact hands to fn: Apply marks it when it
// appends events, so that Transact wakes the relay only then.
type trackedTx struct {
	pgx.Tx
	appended bool
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

// Update is the common command: decide on one aggregate, answering with
// result of the new state. It costs two round trips to PostgreSQL on one
// pooled connection: the read of the state row, then one pipelined batch
// (the state row written under its version check, the events appended to
// the outbox, the idempotency key recorded) that PostgreSQL runs as one
// implicit transaction, committed at the batch's Sync, or rolled back
// whole on the first error. The read takes no lock and runs outside that
// transaction: the write's version check (see queueSave) makes a
// concurrent change fail the batch with command.ErrVersion, as in Apply.
func (s *Store[S]) Update(ctx context.Context, id string, meta command.Meta, decide Decide[S], result func(S, int64) command.Result) (command.Result, error) {
	return s.update(ctx, id, meta, decide, result, true)
}

// Create is Update for an aggregate whose id the caller has just made (a
// new UUID: no row can hold it yet). It decides on the zero state without
// reading the row, so a command costs one round trip, the pipelined
// batch. Nothing is taken on trust: the batch's INSERT fails on the
// primary key if the row exists after all, and Create then runs as Update.
func (s *Store[S]) Create(ctx context.Context, id string, meta command.Meta, decide Decide[S], result func(S, int64) command.Result) (command.Result, error) {
	res, err := s.update(ctx, id, meta, decide, result, false)
	if errors.Is(err, command.ErrVersion) {
		return s.Update(ctx, id, meta, decide, result)
	}
	return res, err
}

// update is Update, reading the row first when read is set, deciding on
// the zero state at version 0 otherwise.
func (s *Store[S]) update(ctx context.Context, id string, meta command.Meta, decide Decide[S], result func(S, int64) command.Result, read bool) (command.Result, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return command.Result{}, err
	}
	defer conn.Release()
	var state S
	var version int64
	if read {
		if state, version, _, err = s.load(ctx, conn, id); err != nil {
			return command.Result{}, err
		}
	}
	next, events, err := decide(state, version)
	if err != nil {
		return command.Result{}, err
	}
	old := version
	if len(events) == 0 {
		next = state // a decide that returns no event changes nothing
	}
	version += int64(len(events))
	res := result(next, version)
	if len(events) == 0 && meta.Idempotency == nil {
		return res, nil
	}
	w := &writes{}
	if len(events) > 0 {
		if err := s.queueWrites(ctx, w, id, old, version, next, meta, events); err != nil {
			return command.Result{}, err
		}
	}
	if meta.Idempotency != nil {
		if err := idempotency.Queue(&w.batch, meta, res); err != nil {
			return command.Result{}, err
		}
		w.check = append(w.check, idempotency.Check)
	}
	if err := w.send(ctx, conn); err != nil {
		return command.Result{}, err
	}
	if len(events) > 0 {
		outbox.Notify(s.pool)
	}
	return res, nil
}

// Apply runs decide on aggregate id within tx: it loads the state, saves
// the new one if its version has not changed meanwhile (command.ErrVersion
// otherwise, for the command bus to retry) and appends the events to the
// outbox. It returns the state and version after the command; a decide that
// returns no event changes nothing. It costs two round trips: the read, and
// the state row and outbox rows written in one pipelined batch.
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
	w := &writes{}
	if err := s.queueWrites(ctx, w, id, old, version, next, meta, events); err != nil {
		return state, old, err
	}
	if err := w.send(ctx, tx); err != nil {
		return state, old, err
	}
	if t, ok := tx.(*trackedTx); ok {
		t.appended = true
	}
	return next, version, nil
}

// writes is one pipelined batch of statements and, for each, what its
// error means to the command.
type writes struct {
	batch pgx.Batch
	check []func(error) error // one per queued statement
}

// send runs the batch on q and returns the first statement's error, mapped
// by its check. On a pool connection the batch is one implicit
// transaction; in a transaction, it is part of it.
func (w *writes) send(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}) error {
	if w.batch.Len() == 0 {
		return nil
	}
	br := q.SendBatch(ctx, &w.batch)
	for _, check := range w.check {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return check(err)
		}
	}
	return br.Close()
}

// queueWrites queues the new state row and the events' outbox rows.
func (s *Store[S]) queueWrites(ctx context.Context, w *writes, id string, old, version int64, next S, meta command.Meta, events []schemas.Event) error {
	if err := s.queueSave(w, id, old, version, next); err != nil {
		return err
	}
	recs, err := s.records(ctx, id, old, meta, events)
	if err != nil {
		return err
	}
	if err := outbox.Queue(&w.batch, recs...); err != nil {
		return err
	}
	for range recs {
		w.check = append(w.check, func(err error) error { return fmt.Errorf("append to outbox: %w", err) })
	}
	return nil
}

// queueSave queues the write of the state row at version, expecting it at
// old (0: absent). The statement fails, and so aborts the transaction it
// runs in, when the row has changed since it was read:
//
//   - a new aggregate is a plain INSERT: a concurrent one makes it fail on
//     the primary key (the loser waits for the winner's commit);
//   - an existing one is an UPDATE that keeps the row's state and sets its
//     version to -1 when the version is no longer old, which the table's
//     CHECK (version > 0) refuses. Keeping the stored state keeps every
//     other constraint of the context (a generated column's CHECK) true,
//     so that a stale write is reported as the version race it is.
//
// Both are command.ErrVersion; another unique or check constraint of the
// context refusing the new state is command.ErrConflict.
func (s *Store[S]) queueSave(w *writes, id string, old, version int64, state S) error {
	raw, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", s.table, id, err)
	}
	if old == 0 {
		w.batch.Queue(`INSERT INTO `+s.table+` (id, version, state) VALUES ($1, $2, $3)`, id, version, raw)
	} else {
		w.batch.Queue(`UPDATE `+s.table+` SET
			version = CASE WHEN version = $4 THEN $2 ELSE -1 END,
			state = CASE WHEN version = $4 THEN $3::jsonb ELSE state END,
			updated_at = now()
			WHERE id = $1`, id, version, raw, old)
	}
	w.check = append(w.check, func(err error) error { return s.saveError(id, old, err) })
	return nil
}

// saveError maps the error of the state row's write.
func (s *Store[S]) saveError(id string, old int64, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == uniqueViolation && pgErr.ConstraintName == s.name+"_pkey",
			pgErr.Code == checkViolation && pgErr.ConstraintName == s.name+"_version_check":
			return fmt.Errorf("save %s %s at version %d: %w", s.table, id, old, command.ErrVersion)
		case pgErr.Code == uniqueViolation || pgErr.Code == checkViolation:
			// A constraint of the context refuses the new state.
			return fmt.Errorf("save %s %s: %s: %w", s.table, id, pgErr.ConstraintName, command.ErrConflict)
		}
	}
	return fmt.Errorf("save %s %s: %w", s.table, id, err)
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
