package products

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/projectors/listing"
	"shopstream/projectors/runner"
)

// Reader reads product documents for the query side.
type Reader struct {
	r       *runner.Reader[View]
	listing *listing.Reader
}

// NewReader reads from the projection's collection in db, and the
// listing's for pages.
func NewReader(db *mongo.Database) *Reader {
	return &Reader{r: runner.NewReader(db, Projection()), listing: listing.NewReader(db)}
}

// Get returns a registered product; found is false for an unknown id or a
// product whose registration has not been projected yet.
func (r *Reader) Get(ctx context.Context, id string) (View, bool, error) {
	return r.r.Get(ctx, id)
}

// Product is a product document with its id, as listed.
type Product = runner.Document[View]

// ErrNotListed reports a page cursor that is not a listed product: an
// unknown id, or a product not projected yet.
var ErrNotListed = errors.New("not a listed product")

// Page returns up to limit registered products after the product after
// ("" for the first page), in listing order (see package listing: the
// order of registration, the same after every rebuild), and
// whether more follow. The id of the last one is the cursor of the next
// page. An after that is not a listed product is ErrNotListed.
//
// It reads the listing's heads (one document per partition), then the
// listing window by window up to the last one holding a registration (one
// read by equality each), and the products it needs block by block
// (likewise): its cost does not grow with the catalogue, nor with the
// records after its last registration. A product listed but not projected yet is left out.
func (r *Reader) Page(ctx context.Context, after string, limit int) ([]Product, bool, error) {
	var from *listing.Position // list what comes after it; nil: from the start
	if after != "" {
		v, ok, err := r.Get(ctx, after)
		if err != nil {
			return nil, false, err
		}
		if !ok || v.Listed == nil {
			return nil, false, fmt.Errorf("%w: %s", ErrNotListed, after)
		}
		from = v.Listed
	}
	last, found, err := r.listing.LastWindow(ctx)
	if err != nil || !found {
		return nil, false, err
	}
	var page []Product
	blocks := blockCache{read: map[int64]bool{}, byID: map[string]Product{}}
	w := int64(0)
	if from != nil {
		w = from.Window()
	}
	for ; len(page) <= limit && w <= last; w++ {
		listed, err := r.listing.Window(ctx, w)
		if err != nil {
			return nil, false, err
		}
		if from != nil {
			listed = slices.DeleteFunc(listed, func(l listing.Listed) bool { return l.At.Compare(*from) <= 0 })
		}
		for len(listed) > 0 && len(page) <= limit {
			n := min(len(listed), limit+1-len(page))
			ps, err := r.shown(ctx, &blocks, listed[:n])
			if err != nil {
				return nil, false, err
			}
			page, listed = append(page, ps...), listed[n:]
		}
	}
	more := len(page) > limit
	return page[:min(len(page), limit)], more, nil
}

// blockCache holds the blocks of products a page has read.
type blockCache struct {
	read map[int64]bool
	byID map[string]Product
}

// shown are the products of listed that a page shows, in order: those
// projected, each at the entry their document folded (a registration
// published twice is shown once). It reads them block by block (one read
// by equality on listed_block each, index-served), not one by one, and
// each block once per page (blocks).
func (r *Reader) shown(ctx context.Context, blocks *blockCache, listed []listing.Listed) ([]Product, error) {
	for _, l := range listed {
		b := l.At.Block()
		if blocks.read[b] {
			continue
		}
		docs, err := r.r.Find(ctx, bson.D{{Key: "listed_block", Value: b}}, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			blocks.byID[d.ID] = d
		}
		blocks.read[b] = true
	}
	out := make([]Product, 0, len(listed))
	for _, l := range listed {
		if d, ok := blocks.byID[l.ProductID]; ok && d.View.Listed != nil && d.View.Listed.Compare(l.At) == 0 {
			out = append(out, d)
		}
	}
	return out, nil
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
