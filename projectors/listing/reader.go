package listing

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/projectors/runner"
)

// Reader reads the listing for the query side.
type Reader struct {
	r     *runner.Reader[Shelf]
	heads *runner.Reader[Head]
}

// NewReader reads from the projections' collections in db.
func NewReader(db *mongo.Database) *Reader {
	return &Reader{r: runner.NewReader(db, Projection()), heads: runner.NewReader(db, Heads())}
}

// LastWindow is the last window holding a registration, over every
// partition; ok is false when none holds one. It reads the heads, one
// document per partition.
func (r *Reader) LastWindow(ctx context.Context) (last int64, ok bool, err error) {
	heads, err := r.heads.Find(ctx, bson.D{}, nil)
	if err != nil {
		return 0, false, err
	}
	for _, h := range heads {
		if h.View.Listed && (!ok || h.View.LastWindow > last) {
			last, ok = h.View.LastWindow, true
		}
	}
	return last, ok, nil
}

// Listed is a registration as listed: the product and where it is.
type Listed struct {
	ProductID string
	At        Position
}

// Window returns the registrations of window w, in listing order: one
// read, by equality on the window, served by its index.
func (r *Reader) Window(ctx context.Context, w int64) ([]Listed, error) {
	shelves, err := r.r.Find(ctx, bson.D{{Key: "window", Value: w}}, nil)
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, s := range shelves {
		for _, e := range s.View.Products {
			out = append(out, Listed{ProductID: e.ProductID, At: Position{Partition: s.View.Partition, Offset: e.Offset, At: e.At}})
		}
	}
	slices.SortFunc(out, func(a, b Listed) int { return a.At.Compare(b.At) })
	return out, nil
}
