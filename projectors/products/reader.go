package products

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/projectors/runner"
)

// Reader reads product documents for the query side.
type Reader struct {
	coll *mongo.Collection
}

// NewReader reads from the projection's collection in db.
func NewReader(db *mongo.Database) *Reader {
	return &Reader{coll: db.Collection(Projection().Collection())}
}

// Get returns a registered product; found is false for an unknown id or a
// product whose registration has not been projected yet.
func (r *Reader) Get(ctx context.Context, id string) (v View, found bool, err error) {
	var doc runner.Document[View]
	err = r.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("read product %s: %w", id, err)
	}
	return doc.View, doc.View.Registered, nil
}
