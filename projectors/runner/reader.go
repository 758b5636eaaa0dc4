package runner

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Reader reads a projection's documents for the query side.
type Reader[V any] struct {
	name string
	coll *mongo.Collection
}

// NewReader reads p's collection in db.
func NewReader[V any](db *mongo.Database, p Projection[V]) *Reader[V] {
	return &Reader[V]{name: p.Name, coll: db.Collection(p.Collection())}
}

// Get returns document id; found is false when there is none.
func (r *Reader[V]) Get(ctx context.Context, id string) (v V, found bool, err error) {
	var doc Document[V]
	err = r.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("read %s %s: %w", r.name, id, err)
	}
	return doc.View, true, nil
}
