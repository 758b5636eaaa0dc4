package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// AliasCollection holds one small document per projection version,
// {_id: "<name>_v<N>", collection: "<physical collection>"}: the
// collection readers and the live runner use. Without a document the
// projection's own Collection() is used. A rebuild builds a new physical
// collection and then switches the alias in one single-document write, so
// every reader sees either the old collection or the new one, whole.
const AliasCollection = "projection_aliases"

type aliasDoc struct {
	ID         string    `bson:"_id"`
	Collection string    `bson:"collection"`
	SwitchedAt time.Time `bson:"switched_at"`
}

// Aliases resolves and switches projection aliases.
type Aliases struct {
	coll *mongo.Collection
}

// NewAliases works on the alias documents of db.
func NewAliases(db *mongo.Database) *Aliases {
	return &Aliases{coll: db.Collection(AliasCollection)}
}

// Resolve returns the physical collection of base (a projection's
// Collection()): the alias target, or base itself when none was set.
func (a *Aliases) Resolve(ctx context.Context, base string) (string, error) {
	var d aliasDoc
	err := a.coll.FindOne(ctx, bson.D{{Key: "_id", Value: base}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return base, nil
	}
	if err != nil {
		return "", fmt.Errorf("resolve alias %s: %w", base, err)
	}
	return d.Collection, nil
}

// ErrSwitched reports that the alias no longer pointed at the collection a
// switch expected (another rebuild switched it first).
var ErrSwitched = errors.New("the alias was switched by someone else")

// Switch points base at to, provided it still points at from: a
// compare-and-swap in one document write, so two concurrent rebuilds cannot
// both win.
func (a *Aliases) Switch(ctx context.Context, base, from, to string) error {
	cur, err := a.Resolve(ctx, base)
	if err != nil {
		return err
	}
	if cur != from {
		return fmt.Errorf("switch %s from %s to %s: it points at %s: %w", base, from, to, cur, ErrSwitched)
	}
	filter := bson.D{{Key: "_id", Value: base}}
	if from != base {
		filter = append(filter, bson.E{Key: "collection", Value: from})
		res, err := a.coll.ReplaceOne(ctx, filter, aliasDoc{ID: base, Collection: to, SwitchedAt: time.Now().UTC()})
		if err != nil {
			return fmt.Errorf("switch %s: %w", base, err)
		}
		if res.MatchedCount == 0 {
			return fmt.Errorf("switch %s from %s: %w", base, from, ErrSwitched)
		}
		return nil
	}
	// First switch: no document yet; the insert fails if another one won.
	if _, err := a.coll.InsertOne(ctx, aliasDoc{ID: base, Collection: to, SwitchedAt: time.Now().UTC()}); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("switch %s from %s: %w", base, from, ErrSwitched)
		}
		return fmt.Errorf("switch %s: %w", base, err)
	}
	return nil
}

// aliasCache is the query side's view of one alias: resolved at most once
// per ttl, and again at once when a read misses (the collection may just
// have been switched and dropped).
type aliasCache struct {
	aliases *Aliases
	base    string
	ttl     time.Duration

	mu      sync.Mutex
	target  string
	fetched time.Time
}

// ReaderAliasTTL is how long a reader trusts a resolved alias. A rebuild
// waits longer than this after a switch before it drops the old collection.
const ReaderAliasTTL = time.Second

func (c *aliasCache) get(ctx context.Context, fresh bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !fresh && c.target != "" && time.Since(c.fetched) < c.ttl {
		return c.target, nil
	}
	t, err := c.aliases.Resolve(ctx, c.base)
	if err != nil {
		return "", err
	}
	c.target, c.fetched = t, time.Now()
	return t, nil
}
