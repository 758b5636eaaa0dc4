// Package stockfeed is the processor that feeds the inventory from the
// catalogue: every ProductRegistered (its initial stock) and
// ProductRestocked on shop.catalog.products.v1 becomes units received in
// the product's stock. Receipts are idempotent by catalogue aggregate
// version, so redelivery (the consumer is at-least-once) adds nothing
// twice; a lost version race is retried by the consumer.
package stockfeed

import (
	"context"
	"log/slog"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/processors/consumer"
	"shopstream/producers/inventory"
	"shopstream/schemas"
)

// Group is the processor's consumer group.
const Group = "shop.processor.stockfeed.v1"

// Topics are what it consumes.
var Topics = []string{schemas.TopicProducts}

// Deps are what the feed calls.
type Deps struct {
	Inventory *inventory.Service
	Logger    *slog.Logger
}

// Feed is the processor.
type Feed struct{ d Deps }

// New returns the feed.
func New(d Deps) *Feed { return &Feed{d: d} }

// Config is the consumer of the feed. A receipt the inventory refuses as
// invalid is permanent: no retry can fix it.
func (f *Feed) Config(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: Topics, Handler: f.Handle, Serde: serde, Logger: f.d.Logger,
		Permanent: []error{command.ErrInvalid}}
}

// Handle turns a catalogue event into a stock receipt.
func (f *Feed) Handle(ctx context.Context, env eventlog.Envelope) error {
	var cmd inventory.ReceiveStock
	switch e := env.Event.(type) {
	case schemas.ProductRegistered:
		cmd = inventory.ReceiveStock{ProductID: e.ProductID, Quantity: int64(e.InitialStock)}
	case schemas.ProductRestocked:
		cmd = inventory.ReceiveStock{ProductID: e.ProductID, Quantity: int64(e.Quantity)}
	default:
		return nil
	}
	cmd.CatalogVersion = env.Meta.AggregateVersion
	return f.d.Inventory.Receive(ctx, command.CausedBy(ctx, env.Meta), cmd)
}
