package listing

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/projectors/runner"
)

// Reader reads the listing for the query side.
type Reader struct{ r *runner.Reader[Shelf] }

// NewReader reads from the projection's collection in db.
func NewReader(db *mongo.Database) *Reader { return &Reader{r: runner.NewReader(db, Projection())} }

// Listed is a registration as listed: the product and where it is.
type Listed struct {
	ProductID string
	At        Position
}

// Window returns the registrations of window w, in listing order, and
// whether any partition has reached w (false: the listing ends before w).
// It is one read, by equality on the window, served by its index.
func (r *Reader) Window(ctx context.Context, w int64) ([]Listed, bool, error) {
	shelves, err := r.r.Find(ctx, bson.D{{Key: "window", Value: w}}, nil)
	if err != nil || len(shelves) == 0 {
		return nil, false, err
	}
	var out []Listed
	for _, s := range shelves {
		for _, e := range s.View.Products {
			out = append(out, Listed{ProductID: e.ProductID, At: Position{Partition: s.View.Partition, Offset: e.Offset, At: e.At}})
		}
	}
	slices.SortFunc(out, func(a, b Listed) int { return a.At.Compare(b.At) })
	return out, true, nil
}
