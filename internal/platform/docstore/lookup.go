package docstore

import (
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// LookupParallelism is how many single-id look-ups [FindByIDs] runs at
// once on FerretDB.
const LookupParallelism = 8

// IsFerretDB reports whether db's server is FerretDB (its buildInfo names
// a ferretdbVersion). The answer is asked once per client and cached.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	if v, ok := ferretClients.Load(db.Client()); ok {
		return v.(bool), nil
	}
	var info bson.M
	if err := db.Client().Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("docstore: buildInfo: %w", err)
	}
	_, ferret := info["ferretdbVersion"]
	ferretClients.Store(db.Client(), ferret)
	return ferret, nil
}

var ferretClients sync.Map // *mongo.Client -> bool

// FindByIDs reads the documents of coll whose _id is one of ids and that
// match extra (nil: all), in no particular order; ids absent are left out.
//
// Each look-up is one the server can serve from its _id index. On MongoDB
// that is {_id: {$in: ids}} (in chunks of [DefaultChunk] ids). FerretDB
// v1.24 pushes no $in down to its backend (it reads and filters the whole
// collection), only top-level equality: there it is one {_id: id, ...extra}
// find per id, [LookupParallelism] at a time.
func FindByIDs[T any](ctx context.Context, db *mongo.Database, coll string, ids []string, extra bson.D) ([]T, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ferret, err := IsFerretDB(ctx, db)
	if err != nil {
		return nil, err
	}
	c := db.Collection(coll)
	var out []T
	if !ferret {
		for lo := 0; lo < len(ids); lo += DefaultChunk {
			filter := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids[lo:min(lo+DefaultChunk, len(ids))]}}}}, extra...)
			cur, err := c.Find(ctx, filter)
			if err != nil {
				return nil, fmt.Errorf("docstore: find in %s: %w", coll, err)
			}
			var docs []T
			if err := cur.All(ctx, &docs); err != nil {
				return nil, fmt.Errorf("docstore: find in %s: %w", coll, err)
			}
			out = append(out, docs...)
		}
		return out, nil
	}

	found := make([]*T, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, LookupParallelism)
	var wg sync.WaitGroup
	opts := options.Find().SetLimit(1)
	for i, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			filter := append(bson.D{{Key: "_id", Value: id}}, extra...)
			cur, err := c.Find(ctx, filter, opts)
			if err != nil {
				errs[i] = err
				return
			}
			var docs []T
			if err := cur.All(ctx, &docs); err != nil {
				errs[i] = err
				return
			}
			if len(docs) > 0 {
				found[i] = &docs[0]
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("docstore: find %s in %s: %w", ids[i], coll, err)
		}
	}
	for _, d := range found {
		if d != nil {
			out = append(out, *d)
		}
	}
	return out, nil
}
