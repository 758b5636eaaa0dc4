package orders

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/projectors/runner"
)

// Reader reads order documents for the query side.
type Reader struct{ r *runner.Reader[View] }

// NewReader reads from the projection's collection in db.
func NewReader(db *mongo.Database) *Reader { return &Reader{r: runner.NewReader(db, Projection())} }

// Get returns a placed order; found is false for an unknown id or an order
// whose placement has not been projected yet.
func (r *Reader) Get(ctx context.Context, id string) (View, bool, error) {
	v, found, err := r.r.Get(ctx, id)
	return v, found && v.Placed, err
}
