// Package stockwatch tells watchers of a product at once when it sells out
// or comes back: every gateway instance tails shop.inventory.stock.v1 from
// its end, without a consumer group (each instance sees every record), and
// fans ProductSoldOut and StockReceived out to the subscribers of that
// product. Delivery is live only: a watcher that connects later learns the
// current state from the read model, not from the past log.
package stockwatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/kafkagroup"
	"shopstream/schemas"
)

// Notice is what a watcher is told.
type Notice struct {
	Kind      string // "sold_out" or "restocked"
	ProductID string
	Available int64
}

// Hub fans stock notices out to watchers.
type Hub struct {
	serde *eventlog.Serde
	log   *slog.Logger

	mu       sync.Mutex
	watchers map[string]map[chan Notice]struct{}
}

// New returns a hub.
func New(serde *eventlog.Serde, log *slog.Logger) *Hub {
	return &Hub{serde: serde, log: log.With("component", "stockwatch"), watchers: map[string]map[chan Notice]struct{}{}}
}

// ClientOpts are the consumer options of the hub's client: the stock
// topic from its end, no group (so no session to time out: a gateway that
// dies holds nothing), with the shop's fetch limits (kafkagroup.Fetch).
func (h *Hub) ClientOpts() []kgo.Opt {
	return append([]kgo.Opt{kgo.ConsumeTopics(schemas.TopicStock), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd())}, kafkagroup.Fetch()...)
}

// Run tails the stock topic until ctx ends.
func (h *Hub) Run(ctx context.Context, cl *kgo.Client) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(fs.Err0(), kgo.ErrClientClosed) {
			return fs.Err0()
		}
		fs.EachError(func(t string, p int32, err error) { h.log.Warn("fetch", "topic", t, "partition", p, "err", err) })
		fs.EachRecord(func(r *kgo.Record) {
			env, err := h.serde.Read(ctx, r)
			if err != nil {
				h.log.Warn("undecodable stock record skipped", "offset", r.Offset, "err", err)
				return
			}
			switch e := env.Event.(type) {
			case schemas.ProductSoldOut:
				h.publish(Notice{Kind: "sold_out", ProductID: e.ProductID})
			case schemas.StockReceived:
				// A restock (not the registration, catalogue version 1)
				// that takes the stock up from zero.
				if e.CatalogVersion > 1 && e.Available > 0 && e.Available == e.Quantity {
					h.publish(Notice{Kind: "restocked", ProductID: e.ProductID, Available: int64(e.Available)})
				}
			}
		})
	}
}

// Watch subscribes to a product's notices until ctx ends. A watcher too
// slow to take a notice misses it rather than holding the others up.
func (h *Hub) Watch(ctx context.Context, productID string) <-chan Notice {
	ch := make(chan Notice, 8)
	h.mu.Lock()
	if h.watchers[productID] == nil {
		h.watchers[productID] = map[chan Notice]struct{}{}
	}
	h.watchers[productID][ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.watchers[productID], ch)
		if len(h.watchers[productID]) == 0 {
			delete(h.watchers, productID)
		}
		h.mu.Unlock()
	}()
	return ch
}

// WatchAll subscribes to every product's notices until ctx ends (the
// console's feed), on the terms of Watch.
func (h *Hub) WatchAll(ctx context.Context) <-chan Notice { return h.Watch(ctx, everyProduct) }

// everyProduct is the watchers' key of WatchAll: no product id is empty.
const everyProduct = ""

func (h *Hub) publish(n Notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range []string{n.ProductID, everyProduct} {
		for ch := range h.watchers[key] {
			select {
			case ch <- n:
			default:
			}
		}
	}
}
