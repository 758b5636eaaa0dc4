package runner

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/platform/docstore"
)

// Reader reads a projection's documents for the query side, through the
// projection's alias: during a rebuild it reads the old collection, after
// the switch the new one, never a half-built one. A read that finds nothing
// resolves the alias again (unless that was done within ReaderMissRecheck)
// and retries once if it moved, so a product never goes missing while its
// collection is swapped.
//
// Only the projection's Readable documents are ever read.
type Reader[V any] struct {
	name     string
	db       *mongo.Database
	alias    *aliasCache
	readable bson.E
}

// NewReader reads p's documents in db.
func NewReader[V any](db *mongo.Database, p Projection[V]) *Reader[V] {
	return &Reader[V]{name: p.Name, db: db, readable: p.Readable,
		alias: &aliasCache{aliases: NewAliases(db), base: p.Collection()}}
}

// Get returns document id; found is false when there is none, or it is not
// readable yet.
func (r *Reader[V]) Get(ctx context.Context, id string) (v V, found bool, err error) {
	docs, err := r.Find(ctx, bson.D{{Key: "_id", Value: id}}, options.Find().SetLimit(1))
	if err != nil || len(docs) == 0 {
		return v, false, err
	}
	return docs[0].View, true, nil
}

// Find returns the readable documents matching filter, with opts (sort,
// limit…).
func (r *Reader[V]) Find(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]Document[V], error) {
	if r.readable.Key != "" {
		filter = append(bson.D{r.readable}, filter...)
	}
	return r.throughAlias(ctx, func(coll string) ([]Document[V], error) { return r.find(ctx, coll, filter, opts) })
}

// throughAlias reads with read from the collection the alias names. When
// read finds nothing, it resolves the alias again (unless that was done
// within ReaderMissRecheck) and, if the alias moved, reads once more from
// the new collection.
func (r *Reader[V]) throughAlias(ctx context.Context, read func(coll string) ([]Document[V], error)) ([]Document[V], error) {
	target, err := r.alias.get(ctx, ReaderAliasTTL)
	if err != nil {
		return nil, err
	}
	docs, err := read(target)
	if err != nil || len(docs) > 0 {
		return docs, err
	}
	fresh, err := r.alias.get(ctx, ReaderMissRecheck)
	if err != nil || fresh == target {
		return docs, err
	}
	return read(fresh)
}

// ByIDs returns the readable documents among ids, in no particular order,
// each look-up served by the _id index (see docstore.FindByIDs).
func (r *Reader[V]) ByIDs(ctx context.Context, ids []string) ([]Document[V], error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var extra bson.D
	if r.readable.Key != "" {
		extra = bson.D{r.readable}
	}
	return r.throughAlias(ctx, func(coll string) ([]Document[V], error) {
		return docstore.FindByIDs[Document[V]](ctx, r.db, coll, ids, extra)
	})
}

func (r *Reader[V]) find(ctx context.Context, coll string, filter bson.D, opts *options.FindOptionsBuilder) ([]Document[V], error) {
	cur, err := r.db.Collection(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.name, err)
	}
	var docs []Document[V]
	if err := cur.All(ctx, &docs); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read %s: %w", r.name, err)
	}
	return docs, nil
}
