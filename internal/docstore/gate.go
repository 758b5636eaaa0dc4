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
const DefaultInFlight = 50

// Gate bounds the number of write statements in flight at once across all
// Stores that share it. The zero value is not usable; use [NewGate].
// A Gate is safe for concurrent use.
type Gate struct {
	budget int
	mu     chan struct{} // serializes acquirers so partial acquisitions cannot deadlock
	tokens chan struct{}
}

// NewGate returns a Gate allowing at most budget statements in flight
// (budget is clamped to [MinChunk, MaxChunk]).
func NewGate(budget int) *Gate {
	budget = min(max(budget, MinChunk), MaxChunk)
	g := &Gate{budget: budget, mu: make(chan struct{}, 1), tokens: make(chan struct{}, budget)}
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
