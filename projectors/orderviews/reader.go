package orderviews

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/projectors/runner"
)

// Reader reads order documents for the query side.
type Reader struct{ r *runner.Reader[View] }

// NewReader reads from the projection's collection in db.
func NewReader(db *mongo.Database) *Reader { return &Reader{r: runner.NewReader(db, Projection())} }

// Get returns a placed order; found is false for an unknown id or an order
// whose placement has not been projected yet.
func (r *Reader) Get(ctx context.Context, id string) (View, bool, error) {
	return r.r.Get(ctx, id)
}

// Order is an order document with its id, as listed.
type Order = runner.Document[View]

// OfCustomer returns up to limit of a customer's placed orders, newest
// first (ties by id), served by the index {customer_id, placed_at}.
func (r *Reader) OfCustomer(ctx context.Context, customerID string, limit int) ([]Order, error) {
	docs, err := r.r.Find(ctx, bson.D{{Key: "customer_id", Value: customerID}},
		options.Find().SetSort(bson.D{{Key: "placed_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	return docs, err
}
