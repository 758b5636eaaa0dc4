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
// collection and then switches the alias in single-document writes, so
// every reader sees either the old collection or the new one, whole.
//
// The switch has two steps. BeginSwitch marks the alias as switching to
// the new collection (readers still read the old one) and the live runners
// hold their next batch; the rebuild then folds the last records up to the
// head and CommitSwitch points the alias at the new collection, where the
// runners go on from their own positions. Holding the runners is what keeps
// each document's events in order: a live runner writing into the new
// collection before the rebuild had folded everything before its position
// would leave a gap that the version guards would then skip over. A switch
// that is neither committed nor aborted by its deadline counts as aborted.
const AliasCollection = "projection_aliases"

type aliasDoc struct {
	ID         string    `bson:"_id"`
	Collection string    `bson:"collection"`
	Next       string    `bson:"next"`  // the collection being switched to, "" when none
	Until      time.Time `bson:"until"` // deadline of the switch to Next
	SwitchedAt time.Time `bson:"switched_at"`
}

// switching reports whether a switch is under way at now.
func (d aliasDoc) switching(now time.Time) bool { return d.Next != "" && now.Before(d.Until) }

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
	d, _, err := a.load(ctx, base)
	return d.Collection, err
}

// load reads base's alias document; found is false when there is none
// (then it reads as base itself).
func (a *Aliases) load(ctx context.Context, base string) (d aliasDoc, found bool, err error) {
	err = a.coll.FindOne(ctx, bson.D{{Key: "_id", Value: base}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return aliasDoc{ID: base, Collection: base}, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("resolve alias %s: %w", base, err)
	}
	return d, true, nil
}

// WriteTarget is the collection a live runner writes base's documents to.
// While a switch is under way it waits (polling every interval) until the
// switch is committed, aborted or past its deadline.
func (a *Aliases) WriteTarget(ctx context.Context, base string, interval time.Duration) (string, error) {
	for {
		d, _, err := a.load(ctx, base)
		if err != nil || !d.switching(time.Now()) {
			return d.Collection, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(interval):
		}
	}
}

// ErrSwitched reports that the alias was not where a switch expected it
// (another rebuild switched it, or this switch passed its deadline).
var ErrSwitched = errors.New("the alias was switched by someone else")

// BeginSwitch marks base as switching from from to to, until the deadline:
// live runners hold their writes from then on. It fails with ErrSwitched
// unless base points at from with no switch under way.
func (a *Aliases) BeginSwitch(ctx context.Context, base, from, to string, deadline time.Time) error {
	cur, found, err := a.load(ctx, base)
	if err != nil {
		return err
	}
	if cur.Collection != from || cur.switching(time.Now()) {
		return fmt.Errorf("switch %s from %s to %s: it points at %s (switching to %q): %w", base, from, to, cur.Collection, cur.Next, ErrSwitched)
	}
	next := aliasDoc{ID: base, Collection: from, Next: to, Until: deadline.UTC(), SwitchedAt: cur.SwitchedAt}
	if !found {
		if _, err := a.coll.InsertOne(ctx, next); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return fmt.Errorf("switch %s from %s: %w", base, from, ErrSwitched)
			}
			return fmt.Errorf("switch %s: %w", base, err)
		}
		return nil
	}
	return a.replace(ctx, cur, next)
}

// CommitSwitch points base at to, the collection BeginSwitch named. It
// fails with ErrSwitched if the switch passed its deadline (the runners
// may have written to the old collection since).
func (a *Aliases) CommitSwitch(ctx context.Context, base, to string) error {
	cur, _, err := a.load(ctx, base)
	if err != nil {
		return err
	}
	if cur.Next != to || !cur.switching(time.Now()) {
		return fmt.Errorf("commit the switch of %s to %s: not switching to it any more (deadline %s): %w", base, to, cur.Until.Format(time.RFC3339), ErrSwitched)
	}
	return a.replace(ctx, cur, aliasDoc{ID: base, Collection: to, SwitchedAt: time.Now().UTC()})
}

// AbortSwitch ends a switch to to without changing the collection; it does
// nothing if base is not switching to to.
func (a *Aliases) AbortSwitch(ctx context.Context, base, to string) error {
	cur, _, err := a.load(ctx, base)
	if err != nil || cur.Next != to {
		return err
	}
	err = a.replace(ctx, cur, aliasDoc{ID: base, Collection: cur.Collection, SwitchedAt: cur.SwitchedAt})
	if errors.Is(err, ErrSwitched) {
		return nil
	}
	return err
}

// replace swaps cur for next if the stored document is still cur: a
// compare-and-swap in one document write.
func (a *Aliases) replace(ctx context.Context, cur, next aliasDoc) error {
	res, err := a.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: cur.ID}, {Key: "collection", Value: cur.Collection},
		{Key: "next", Value: cur.Next}, {Key: "until", Value: cur.Until}}, next)
	if err != nil {
		return fmt.Errorf("alias %s: %w", cur.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("alias %s changed meanwhile: %w", cur.ID, ErrSwitched)
	}
	return nil
}

// aliasCache is the query side's view of one alias: resolved at most once
// per ReaderAliasTTL, and again when a read misses unless it was resolved within
// ReaderMissRecheck (the collection may just have been switched).
type aliasCache struct {
	aliases *Aliases
	base    string

	mu      sync.Mutex
	target  string
	fetched time.Time
}

// ReaderAliasTTL is how long a reader trusts a resolved alias. A rebuild
// waits longer than this after a switch before it drops the old collection.
const ReaderAliasTTL = time.Second

// ReaderMissRecheck is how recently a reader must have resolved its alias
// for a read that finds nothing not to resolve it again. A document that
// existed before a switch is in both collections, so it is never missed;
// one created in the new collection right after the switch may be missed
// for this long, on top of the projection's own lag. Without it, every
// read that finds nothing (a listing window with no registration, an
// unknown id) would cost a second look-up, of the alias.
const ReaderMissRecheck = 50 * time.Millisecond

// get is the alias target, resolved again if it is older than maxAge.
func (c *aliasCache) get(ctx context.Context, maxAge time.Duration) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.target != "" && time.Since(c.fetched) < maxAge {
		return c.target, nil
	}
	t, err := c.aliases.Resolve(ctx, c.base)
	if err != nil {
		return "", err
	}
	c.target, c.fetched = t, time.Now()
	return t, nil
}
