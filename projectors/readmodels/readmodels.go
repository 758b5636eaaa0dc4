// Package readmodels names the read models a replay can rebuild or verify
// from the log: what `shop replay` and the console's replay view offer.
package readmodels

import (
	"context"
	"maps"
	"slices"

	"shopstream/projectors/listing"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/replay"
	"shopstream/projectors/runner"
)

// Job rebuilds or verifies one read model.
type Job struct {
	Rebuild func(context.Context, replay.Config) (replay.Report, error)
	Verify  func(context.Context, replay.Config) (replay.Verification, error)
}

var jobs = map[string]Job{
	"products":      jobOf(products.Projection()),
	"listing":       jobOf(listing.Projection()),
	"listing_heads": jobOf(listing.Heads()),
	"orders":        jobOf(orderviews.Projection()),
}

func jobOf[V any](p runner.Projection[V]) Job {
	return Job{
		Rebuild: func(ctx context.Context, c replay.Config) (replay.Report, error) { return replay.Rebuild(ctx, p, c) },
		Verify: func(ctx context.Context, c replay.Config) (replay.Verification, error) {
			return replay.Verify(ctx, p, c)
		},
	}
}

// Lookup returns the job of the read model name.
func Lookup(name string) (Job, bool) {
	j, ok := jobs[name]
	return j, ok
}

// Names are the read models' names, sorted.
func Names() []string { return slices.Sorted(maps.Keys(jobs)) }
