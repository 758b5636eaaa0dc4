package listing

import (
	"strconv"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Head is what the listing knows of one partition of the catalogue topic:
// the last window holding a registration. A page walks windows up to the
// last one of every partition and no further, so the records after the
// last registration (restocks, photos) cost it nothing.
type Head struct {
	Partition int32 `bson:"partition"`
	// Next is the offset after the last record folded: the guard that
	// makes a replayed or redelivered record change nothing.
	Next int64 `bson:"next"`
	// Listed is whether the partition holds a registration; LastWindow is
	// the window of its last one.
	Listed     bool  `bson:"listed"`
	LastWindow int64 `bson:"last_window"`
}

// HeadsVersion is the version of the heads projection; bump it to rebuild
// it from the log on purpose.
const HeadsVersion = 1

// Heads is the projection of the listing's heads, one document per
// partition of shop.catalog.products.v1, in the consumer group
// shop.projector.listing_heads.v<N>. It is folded apart from the shelves
// (a record changes one document of a projection): a head that lags its
// shelves hides the newest registrations for as long; one ahead of them
// makes a page read windows not projected yet, which it skips.
func Heads() runner.Projection[Head] {
	return runner.Projection[Head]{
		Name:    "listing_heads",
		Version: HeadsVersion,
		Topics:  []string{schemas.TopicProducts},
		DocID: func(env eventlog.Envelope) string {
			if env.Topic != schemas.TopicProducts {
				return ""
			}
			return strconv.Itoa(int(env.Partition))
		},
		Apply: ApplyHead,
	}
}

// ApplyHead folds one record of the catalogue topic into its partition's
// head.
func ApplyHead(h Head, env eventlog.Envelope) Head {
	if env.Topic != schemas.TopicProducts || env.Offset < h.Next {
		return h
	}
	h.Partition, h.Next = env.Partition, env.Offset+1
	if _, ok := env.Event.(schemas.ProductRegistered); ok {
		h.Listed, h.LastWindow = true, windowOf(env.Offset)
	}
	return h
}
