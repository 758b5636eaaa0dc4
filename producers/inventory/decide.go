// Package inventory is the write service of saleable stock. The catalogue
// says how many units a product was registered or restocked with; the
// inventory turns those into StockReceived events and holds the units
// orders reserve, on shop.inventory.stock.v1 keyed by product id, through
// the PostgreSQL write model (schema "inventory") and the outbox.
//
// Guarantees: stock never goes below zero. The rule refuses a reservation
// larger than what is available, optimistic concurrency makes concurrent
// reservations of one product serialise, and the database itself refuses a
// negative stock (a CHECK on a column generated from the state), so a bug
// in the rule cannot oversell either. A reservation, a release and a
// receipt are idempotent: by order id, and by catalogue aggregate version.
package inventory

import (
	"maps"

	"github.com/google/uuid"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// Stock is the write-side state of one product's stock.
type Stock struct {
	Available      int64            `json:"available"`       // saleable units; a generated column with CHECK (available >= 0)
	CatalogVersion int64            `json:"catalog_version"` // last catalogue event received
	Reserved       map[string]int64 `json:"reserved,omitempty"`
	// Rejected are the orders refused units of this product, for good: a
	// refusal is published (StockReservationRejected) and the order
	// cancelled out_of_stock, so reserving it again, after a restock,
	// must not let it go ahead.
	Rejected map[string]bool `json:"rejected,omitempty"`
}

// ReceiveStock adds the units of a catalogue event (ProductRegistered's
// initial stock, ProductRestocked's quantity) of the given aggregate
// version; an event at or below the last version received changes nothing.
type ReceiveStock struct {
	ProductID      string
	Quantity       int64
	CatalogVersion int64
}

// Reserve holds units of one product for an order.
type Reserve struct {
	ProductID string
	OrderID   string
	Quantity  int64
}

// Reject records that an order could not have its units.
type Reject struct {
	ProductID string
	OrderID   string
	Quantity  int64
}

// Release gives an order's units back (compensation).
type Release struct {
	ProductID string
	OrderID   string
	Reason    string
}

// Command is a command on one product's stock.
type Command interface{ productID() string }

func (c ReceiveStock) productID() string { return c.ProductID }
func (c Reserve) productID() string      { return c.ProductID }
func (c Reject) productID() string       { return c.ProductID }
func (c Release) productID() string      { return c.ProductID }

// Decide is the pure rule of stock. A Reserve it cannot satisfy is
// refused with command.ErrConflict (a *command.Shortage); the caller records the
// refusal with Reject, after which the same order is refused for good
// (a retried step after a restock finds it rejected, not reservable).
func Decide(s Stock, version int64, cmd Command) ([]schemas.Event, error) {
	switch c := cmd.(type) {
	case ReceiveStock:
		if c.Quantity < 0 {
			return nil, command.Invalid("quantity", "must not be negative")
		}
		if c.CatalogVersion <= s.CatalogVersion {
			return nil, nil // already received
		}
		return []schemas.Event{schemas.StockReceived{ProductID: c.ProductID, Quantity: int32(c.Quantity),
			Available: int32(s.Available + c.Quantity), CatalogVersion: c.CatalogVersion}}, nil
	case Reserve:
		if err := checkOrder(c.OrderID, c.Quantity); err != nil {
			return nil, err
		}
		if version == 0 {
			return nil, &command.Shortage{ProductID: c.ProductID, Requested: c.Quantity, Unknown: true}
		}
		if _, held := s.Reserved[c.OrderID]; held {
			return nil, nil // already reserved for this order
		}
		if s.Rejected[c.OrderID] || s.Available < c.Quantity {
			return nil, &command.Shortage{ProductID: c.ProductID, Requested: c.Quantity, Available: s.Available}
		}
		remaining := s.Available - c.Quantity
		events := []schemas.Event{schemas.StockReserved{ProductID: c.ProductID, OrderID: c.OrderID, Quantity: int32(c.Quantity), Remaining: int32(remaining)}}
		if remaining == 0 {
			events = append(events, schemas.ProductSoldOut{ProductID: c.ProductID})
		}
		return events, nil
	case Reject:
		if err := checkOrder(c.OrderID, c.Quantity); err != nil {
			return nil, err
		}
		if s.Rejected[c.OrderID] {
			return nil, nil // already recorded
		}
		return []schemas.Event{schemas.StockReservationRejected{ProductID: c.ProductID, OrderID: c.OrderID, Quantity: int32(c.Quantity), Available: int32(s.Available)}}, nil
	case Release:
		q, held := s.Reserved[c.OrderID]
		if !held {
			return nil, nil // never reserved, or already released
		}
		return []schemas.Event{schemas.StockReleased{ProductID: c.ProductID, OrderID: c.OrderID, Quantity: int32(q), Reason: c.Reason}}, nil
	}
	return nil, command.Invalid("command", "unknown command")
}

func checkOrder(orderID string, quantity int64) error {
	if uuid.Validate(orderID) != nil {
		return command.Invalid("order_id", "must be a UUID")
	}
	if quantity <= 0 || quantity > MaxQuantity {
		return command.Invalid("quantity", "must be between 1 and 99")
	}
	return nil
}

// MaxQuantity is the most units of one product an order may hold.
const MaxQuantity = 99

// Evolve folds events into the state.
func Evolve(s Stock, events ...schemas.Event) Stock {
	for _, e := range events {
		switch e := e.(type) {
		case schemas.StockReceived:
			s.Available = int64(e.Available)
			s.CatalogVersion = e.CatalogVersion
		case schemas.StockReserved:
			s.Reserved = maps.Clone(s.Reserved)
			if s.Reserved == nil {
				s.Reserved = map[string]int64{}
			}
			s.Reserved[e.OrderID] = int64(e.Quantity)
			s.Available = int64(e.Remaining)
		case schemas.StockReservationRejected:
			s.Rejected = maps.Clone(s.Rejected)
			if s.Rejected == nil {
				s.Rejected = map[string]bool{}
			}
			s.Rejected[e.OrderID] = true
		case schemas.StockReleased:
			s.Reserved = maps.Clone(s.Reserved)
			delete(s.Reserved, e.OrderID)
			s.Available += int64(e.Quantity)
		}
	}
	return s
}
