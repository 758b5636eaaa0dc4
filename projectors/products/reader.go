package products

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/projectors/runner"
)

// Reader reads product documents for the query side.
type Reader struct{ r *runner.Reader[View] }

// NewReader reads from the projection's collection in db.
func NewReader(db *mongo.Database) *Reader { return &Reader{r: runner.NewReader(db, Projection())} }

// Get returns a registered product; found is false for an unknown id or a
// product whose registration has not been projected yet.
func (r *Reader) Get(ctx context.Context, id string) (View, bool, error) {
	return r.r.Get(ctx, id)
}

// Product is a product document with its id, as listed.
type Product = runner.Document[View]

// Page returns up to limit registered products with an id above after,
// sorted by id, and whether more follow. The id of the last one is the
// cursor of the next page.
func (r *Reader) Page(ctx context.Context, after string, limit int) ([]Product, bool, error) {
	var filter bson.D
	if after != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	docs, err := r.r.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, false, err
	}
	more := len(docs) > limit
	return docs[:min(len(docs), limit)], more, nil
}

// Many returns the registered products among ids, by id: one look-up per
// distinct id on FerretDB (which scans for $in), one $in on MongoDB.
func (r *Reader) Many(ctx context.Context, ids []string) (map[string]View, error) {
	docs, err := r.r.ByIDs(ctx, slices.Compact(slices.Sorted(slices.Values(ids))))
	if err != nil {
		return nil, err
	}
	out := make(map[string]View, len(docs))
	for _, d := range docs {
		out[d.ID] = d.View
	}
	return out, nil
}
