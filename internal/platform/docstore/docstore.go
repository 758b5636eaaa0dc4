// Package docstore is the MongoDB store layer that every read-model writer
// goes through.
//
// All access goes through the official driver (go.mongodb.org/mongo-driver/v2),
// so the same code runs against real MongoDB and against the embedded FerretDB
// (internal/devinfra/embedded/ferret) used in tests and single-node setups.
//
// # Chunked bulk writes
//
// FerretDB v1.24.0 keeps each statement's SQLite cursor open until a whole
// update command returns (a defer inside a loop in its
// internal/handler/msg_update.go). A single update/bulk command carrying more
// statements than its connection pool (roughly 150-200) therefore deadlocks
// the server and every later request. Measured: the limit is the backend's
// pool of 100 SQLite connections per database, and it is reached only by
// statements that match an existing document (e.g. re-running an upsert).
// Concurrent commands add up: four concurrent 50-statement update commands on
// one database deadlock it too.
//
// [Store.BulkWrite] works around this by never putting more than the chunk
// size (default [DefaultChunk]) statements into one server command, and by
// passing each chunk through a [Gate] that bounds the statements in flight
// at once (default [DefaultInFlight], shared by all Stores on the same
// mongo.Client and database). Writes that bypass the Store (e.g.
// Collection(...).UpdateMany) are not gated. The gate also sends one chunk
// per collection at a time, which makes a revision-filtered replace a
// compare-and-set on FerretDB (see [Gate]). Against real MongoDB the gate
// only serializes bulk writes; disable it with WithGate(nil).
package docstore

import (
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultChunk is the most write statements sent in one command; 50 is safe
// on FerretDB v1.24.
const DefaultChunk = 50

// Chunk size bounds enforced by [WithChunk].
const (
	MinChunk = 1
	MaxChunk = 1000
)

// Store wraps a database handle and performs chunked bulk writes.
// It is safe for concurrent use.
type Store struct {
	db    *mongo.Database
	chunk int
	gate  *Gate // nil: no gate

	gateSet bool // WithGate was given
}

// Option configures a [Store].
type Option func(*Store)

// WithChunk sets the most write statements sent in one server command.
// n is clamped to [MinChunk, MaxChunk].
func WithChunk(n int) Option {
	return func(s *Store) { s.chunk = min(max(n, MinChunk), MaxChunk) }
}

// WithGate makes the Store pass every chunk through g, which bounds the
// write statements in flight at once across all Stores sharing g. nil
// disables gating (fine for real MongoDB). Without this option a Store uses a
// process-wide gate of [DefaultInFlight] statements shared by all Stores on
// the same mongo.Client and database.
func WithGate(g *Gate) Option {
	return func(s *Store) { s.gate, s.gateSet = g, true }
}

// New returns a Store writing to db.
func New(db *mongo.Database, opts ...Option) *Store {
	s := &Store{db: db, chunk: DefaultChunk}
	for _, o := range opts {
		o(s)
	}
	if !s.gateSet {
		s.gate = defaultGate(db)
	}
	return s
}

// Gate returns the Store's gate, or nil if gating is disabled.
func (s *Store) Gate() *Gate { return s.gate }

// Chunk returns the configured chunk size.
func (s *Store) Chunk() int { return s.chunk }

// Database returns the underlying database handle.
func (s *Store) Database() *mongo.Database { return s.db }

// Collection returns a handle to the named collection.
func (s *Store) Collection(name string) *mongo.Collection {
	return s.db.Collection(name)
}

// Result holds the summed counts of a [Store.BulkWrite].
type Result struct {
	Matched, Modified, Upserted, Inserted, Deleted int64
}

func (r *Result) add(br *mongo.BulkWriteResult) {
	if br == nil {
		return
	}
	r.Matched += br.MatchedCount
	r.Modified += br.ModifiedCount
	r.Upserted += br.UpsertedCount
	r.Inserted += br.InsertedCount
	r.Deleted += br.DeletedCount
}

// BulkError reports a failed [Store.BulkWrite]. Chunks [0, Succeeded) were
// fully applied; chunk Failed (= Succeeded) may be partially applied; later
// chunks were not sent. Err is the driver error (often a
// mongo.BulkWriteException whose indexes are relative to the failed chunk) or
// the context error.
type BulkError struct {
	Collection string
	Chunks     int // total number of chunks
	Succeeded  int // chunks fully applied before the failure
	ChunkSize  int
	Err        error
}

func (e *BulkError) Error() string {
	return fmt.Sprintf("docstore: bulk write to %q: chunk %d of %d failed (%d chunks of up to %d models succeeded, models [0,%d) applied): %v",
		e.Collection, e.Succeeded+1, e.Chunks, e.Succeeded, e.ChunkSize, e.Succeeded*e.ChunkSize, e.Err)
}

func (e *BulkError) Unwrap() error { return e.Err }

// BulkWrite writes models to collection coll in chunks of at most the chunk
// size (see [WithChunk]), so that no single server command carries more than
// that many write statements.
//
// Guarantees:
//   - Each chunk is one unordered bulk write: statements within a chunk may be
//     applied in any order, and one failing statement does not stop the others
//     in that chunk. The driver may split a chunk further (one command per
//     statement kind: insert, update, delete), never merge chunks.
//   - Chunks are sent strictly one after another, in slice order; chunk i+1 is
//     sent only after chunk i fully succeeded. Thus a model in a later chunk
//     is applied after every model in an earlier chunk.
//   - Each chunk waits for room in the Store's [Gate] (see [WithGate]) before
//     it is sent; the wait honours ctx.
//   - Nothing is retried by the Store. (The driver's own retryable-writes
//     mechanism, configured on the mongo.Client, may retry a single command
//     once on a replica set; it is idempotent server-side and never applies
//     on a standalone server or FerretDB.)
//   - On failure it stops, returns the counts summed so far (including the
//     partial counts the driver reports for the failed chunk) and a
//     *[BulkError] wrapping the cause (use errors.As / errors.Is), which
//     says how many chunks succeeded.
//
// An empty models slice is a no-op.
func (s *Store) BulkWrite(ctx context.Context, coll string, models []mongo.WriteModel) (Result, error) {
	var res Result
	if len(models) == 0 {
		return res, nil
	}
	c := s.db.Collection(coll)
	chunks := (len(models) + s.chunk - 1) / s.chunk
	opts := options.BulkWrite().SetOrdered(false)

	for i := range chunks {
		fail := func(err error) (Result, error) {
			return res, &BulkError{Collection: coll, Chunks: chunks, Succeeded: i, ChunkSize: s.chunk, Err: err}
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		lo := i * s.chunk
		hi := min(lo+s.chunk, len(models))
		br, err := s.writeChunk(ctx, c, models[lo:hi], opts)
		res.add(br)
		if err != nil {
			return fail(err)
		}
	}
	return res, nil
}

// writeChunk sends one chunk as one unordered bulk write, holding its
// collection's lock and room in the gate while it is in flight.
func (s *Store) writeChunk(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel, opts *options.BulkWriteOptionsBuilder) (*mongo.BulkWriteResult, error) {
	if s.gate == nil {
		return c.BulkWrite(ctx, models, opts)
	}
	return s.gated(ctx, func(ctx context.Context) (func(), error) { return s.gate.lockCollection(ctx, c.Name()) }, c, models, opts)
}

// BulkWriteDocs writes models to collection coll where models[i] writes
// the document ids[i] alone, each document at most once (the shape of a
// projector's batch). It groups the models by their documents' stripe (see
// [StripeOf]) and writes the stripes at once, each as a sequence of
// unordered chunks of at most the chunk size and its share of the gate's
// budget, holding its stripe's lock, so that writes to different documents
// go side by side while writes to one document never overlap (a
// revision-filtered replace stays a compare-and-set, see [Gate]). FerretDB
// runs the statements of a command one after another; chunks in parallel
// keep several of its backend connections busy.
//
// There is no order between models. On failure it stops sending, waits for
// the chunks in flight and returns the counts of what was applied and a
// *[BulkError] wrapping the first cause (its chunk counts are over all
// stripes). Without a gate it is [Store.BulkWrite] in one stripe.
func (s *Store) BulkWriteDocs(ctx context.Context, coll string, ids []string, models []mongo.WriteModel) (Result, error) {
	if len(ids) != len(models) {
		return Result{}, fmt.Errorf("docstore: bulk write to %q: %d ids for %d models", coll, len(ids), len(models))
	}
	if s.gate == nil || len(models) <= s.chunk {
		return s.BulkWrite(ctx, coll, models)
	}
	var byStripe [Stripes][]mongo.WriteModel
	for i, m := range models {
		st := StripeOf(ids[i])
		byStripe[st] = append(byStripe[st], m)
	}
	chunk := max(1, min(s.chunk, s.gate.budget/Stripes))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := s.db.Collection(coll)
	opts := options.BulkWrite().SetOrdered(false)

	var mu sync.Mutex
	var res Result
	var firstErr error
	chunks, succeeded := 0, 0
	for _, ms := range byStripe {
		chunks += (len(ms) + chunk - 1) / chunk
	}
	var wg sync.WaitGroup
	for st, ms := range byStripe {
		if len(ms) == 0 {
			continue
		}
		wg.Go(func() {
			for lo := 0; lo < len(ms); lo += chunk {
				if ctx.Err() != nil {
					return
				}
				br, err := s.writeStripeChunk(ctx, c, st, ms[lo:min(lo+chunk, len(ms))], opts)
				mu.Lock()
				res.add(br)
				if err == nil {
					succeeded++
				} else if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && succeeded < chunks {
		firstErr = context.Cause(ctx)
	}
	if firstErr != nil {
		return res, &BulkError{Collection: coll, Chunks: chunks, Succeeded: succeeded, ChunkSize: chunk, Err: firstErr}
	}
	return res, nil
}

// writeStripeChunk sends one chunk of documents of one stripe, holding the
// stripe's lock and room in the gate while it is in flight.
func (s *Store) writeStripeChunk(ctx context.Context, c *mongo.Collection, stripe int, models []mongo.WriteModel, opts *options.BulkWriteOptionsBuilder) (*mongo.BulkWriteResult, error) {
	return s.gated(ctx, func(ctx context.Context) (func(), error) { return s.gate.lockStripe(ctx, c.Name(), stripe) }, c, models, opts)
}

// gated sends models as one unordered bulk write under lock and room in
// the gate for them.
func (s *Store) gated(ctx context.Context, lock func(context.Context) (func(), error), c *mongo.Collection, models []mongo.WriteModel, opts *options.BulkWriteOptionsBuilder) (*mongo.BulkWriteResult, error) {
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	n, err := s.gate.acquire(ctx, len(models))
	if err != nil {
		return nil, err
	}
	defer s.gate.release(n)
	return c.BulkWrite(ctx, models, opts)
}
