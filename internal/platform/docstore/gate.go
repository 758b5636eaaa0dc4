package docstore

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// DefaultInFlight is the default budget of write statements that may be in
// flight at once, across all Stores sharing a [Gate]. FerretDB v1.24 (SQLite)
// gives each database a pool of 100 SQLite connections and an update command
// can pin one per statement until it returns, so concurrent chunks add up:
// four concurrent 50-statement chunks deadlock the server just as one
// 200-statement command does. 50 keeps half the pool free for other traffic.
// On the PostgreSQL backend the same holds for FerretDB's pool of PostgreSQL
// connections, which internal/devinfra/embedded/ferret sizes at 100 for that reason
// (ferret.DefaultPoolSize; FerretDB's own default of 50 hangs on one
// 50-statement chunk), and the server's max_connections (200 in
// internal/devinfra/embedded/postgres) above it and the shop's own pool.
const DefaultInFlight = 50

// Gate bounds the number of write statements in flight at once across all
// Stores that share it. The zero value is not usable; use [NewGate].
// A Gate is safe for concurrent use.
//
// A Gate also lets only one chunk per document be in flight at once: one
// chunk per collection, or with [Store.BulkWriteDocs] one per stripe of a
// collection (chunks whose documents hash to different stripes go at once).
// FerretDB v1.24 runs an update as a query followed by a write by _id
// (updateDocument in its internal/handler/msg_update.go), not as one atomic
// step, so two conditional replaces sent at once (filter {_id, _rev}) can
// both match and the second silently overwrites the first. Serialized, a
// revision filter is a compare-and-set among all writers sharing the Gate
// (one process); across processes only a server with atomic
// single-document updates (MongoDB) gives it.
type Gate struct {
	budget int
	mu     chan struct{} // serializes acquirers so partial acquisitions cannot deadlock
	tokens chan struct{}

	collMu sync.Mutex
	colls  map[string]*[Stripes]chan struct{} // collection -> its stripes' locks, held while a chunk is in flight
}

// Stripes is how many parts a Gate's lock of each collection has: a chunk
// of [Store.BulkWriteDocs] holds the part of its documents' stripe (see
// [StripeOf]), a chunk of [Store.BulkWrite] holds all of them.
const Stripes = 4

// StripeOf is the stripe of the document id.
func StripeOf(id string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % Stripes)
}

// NewGate returns a Gate allowing at most budget statements in flight
// (budget is clamped to [MinChunk, MaxChunk]).
func NewGate(budget int) *Gate {
	budget = min(max(budget, MinChunk), MaxChunk)
	g := &Gate{budget: budget, mu: make(chan struct{}, 1), tokens: make(chan struct{}, budget), colls: map[string]*[Stripes]chan struct{}{}}
	for range budget {
		g.tokens <- struct{}{}
	}
	return g
}

// Budget returns the gate's statement budget.
func (g *Gate) Budget() int { return g.budget }

// acquire takes n tokens (n is capped at the budget) and returns how many
// were taken; it gives them back and returns ctx's error if ctx ends first.
func (g *Gate) acquire(ctx context.Context, n int) (int, error) {
	n = min(n, g.budget)
	select {
	case g.mu <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-g.mu }()
	for i := range n {
		select {
		case <-g.tokens:
		case <-ctx.Done():
			g.release(i)
			return 0, ctx.Err()
		}
	}
	return n, nil
}

// lockCollection waits until no other chunk to coll is in flight and
// returns the function that lets the next one go; it returns ctx's error if
// ctx ends first. It takes every stripe, in order.
func (g *Gate) lockCollection(ctx context.Context, coll string) (func(), error) {
	l := g.stripes(coll)
	for i := range l {
		select {
		case l[i] <- struct{}{}:
		case <-ctx.Done():
			for j := range i {
				<-l[j]
			}
			return nil, ctx.Err()
		}
	}
	return func() {
		for i := range l {
			<-l[i]
		}
	}, nil
}

// lockStripe waits until no other chunk to stripe of coll is in flight.
func (g *Gate) lockStripe(ctx context.Context, coll string, stripe int) (func(), error) {
	l := g.stripes(coll)
	select {
	case l[stripe] <- struct{}{}:
		return func() { <-l[stripe] }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *Gate) stripes(coll string) *[Stripes]chan struct{} {
	g.collMu.Lock()
	defer g.collMu.Unlock()
	l, ok := g.colls[coll]
	if !ok {
		l = new([Stripes]chan struct{})
		for i := range l {
			l[i] = make(chan struct{}, 1)
		}
		g.colls[coll] = l
	}
	return l
}

func (g *Gate) release(n int) {
	for range n {
		g.tokens <- struct{}{}
	}
}

type gateKey struct {
	client *mongo.Client
	db     string
}

// defaultGates holds one Gate per (client, database): FerretDB's SQLite
// backend has one connection pool per database.
var defaultGates sync.Map // gateKey -> *Gate

func defaultGate(db *mongo.Database) *Gate {
	k := gateKey{db.Client(), db.Name()}
	if g, ok := defaultGates.Load(k); ok {
		return g.(*Gate)
	}
	g, _ := defaultGates.LoadOrStore(k, NewGate(DefaultInFlight))
	return g.(*Gate)
}
