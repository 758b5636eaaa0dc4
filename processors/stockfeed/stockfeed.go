// Package stockfeed is the processor that feeds the inventory from the
// catalogue: every ProductRegistered (its initial stock) and
// ProductRestocked on shop.catalog.products.v1 becomes units received in
// the product's stock. Receipts are idempotent by catalogue aggregate
// version, so redelivery (the consumer is at-least-once) adds nothing
// twice; a lost version race is retried by the consumer.
package stockfeed

import (
	"context"
	"errors"

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

// Handler turns catalogue events into stock receipts.
func Handler(svc *inventory.Service) consumer.Handler {
	return func(ctx context.Context, env eventlog.Envelope) error {
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
		err := svc.Receive(ctx, command.CausedBy(ctx, env.Meta), cmd)
		if errors.Is(err, command.ErrInvalid) {
			return consumer.Permanent(err)
		}
		return err
	}
}

// Config is the consumer of the feed.
func Config(svc *inventory.Service, serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: Topics, Handler: Handler(svc), Serde: serde}
}
