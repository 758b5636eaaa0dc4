// Package carts is the write service of shopping carts, one per customer,
// on shop.carts.v1 keyed by customer id, through the PostgreSQL write model
// (schema "carts") and the outbox. Checking out empties the cart in the
// same transaction as the order it becomes (package orders).
package carts

import (
	"slices"

	"github.com/google/uuid"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// Limits of a cart.
const (
	MaxQuantity = 99 // units of one product
	MaxLines    = 50 // distinct products
)

// errEmpty refuses to check out an empty cart.
var errEmpty = command.Invalid("items", "the cart is empty: send items, or add to the cart first")

// Cart is the write-side state of a customer's cart.
type Cart struct {
	Items []Item `json:"items"`
}

// Item is a line of a cart.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// Quantity returns the units of productID in the cart.
func (c Cart) Quantity(productID string) int64 {
	if i := c.index(productID); i >= 0 {
		return c.Items[i].Quantity
	}
	return 0
}

func (c Cart) index(productID string) int {
	return slices.IndexFunc(c.Items, func(it Item) bool { return it.ProductID == productID })
}

// AddItem puts units of a product in the cart, adding to what it holds.
type AddItem struct {
	CustomerID string
	ProductID  string
	Quantity   int64
}

// RemoveItem takes a product out of the cart.
type RemoveItem struct {
	CustomerID string
	ProductID  string
}

// CheckOut empties the cart into order OrderID.
type CheckOut struct {
	CustomerID string
	OrderID    string
}

// Command is a command on one cart.
type Command interface{ customerID() string }

func (c AddItem) customerID() string    { return c.CustomerID }
func (c RemoveItem) customerID() string { return c.CustomerID }
func (c CheckOut) customerID() string   { return c.CustomerID }

// CommandName names the command on the bus.
func (AddItem) CommandName() string { return "carts.AddItem" }

// CommandName names the command on the bus.
func (RemoveItem) CommandName() string { return "carts.RemoveItem" }

// Validate checks the fields on their own.
func (c AddItem) Validate() error {
	switch {
	case uuid.Validate(c.CustomerID) != nil:
		return command.Invalid("customer_id", "must be a UUID")
	case uuid.Validate(c.ProductID) != nil:
		return command.Invalid("product_id", "must be a UUID")
	case c.Quantity < 1 || c.Quantity > MaxQuantity:
		return command.Invalid("quantity", "must be between 1 and 99")
	}
	return nil
}

// Decide is the pure rule of carts.
func Decide(c Cart, cmd Command) ([]schemas.Event, error) {
	switch cmd := cmd.(type) {
	case AddItem:
		if err := cmd.Validate(); err != nil {
			return nil, err
		}
		held := c.Quantity(cmd.ProductID)
		if held+cmd.Quantity > MaxQuantity {
			return nil, command.Invalid("quantity", "the cart would hold more than 99 units of this product")
		}
		if held == 0 && len(c.Items) >= MaxLines {
			return nil, command.Invalid("product_id", "the cart already holds 50 different products")
		}
		return []schemas.Event{schemas.ItemAddedToCart{CustomerID: cmd.CustomerID, ProductID: cmd.ProductID, Quantity: int32(cmd.Quantity)}}, nil
	case RemoveItem:
		if c.index(cmd.ProductID) < 0 {
			return nil, command.ErrNotFound
		}
		return []schemas.Event{schemas.ItemRemovedFromCart{CustomerID: cmd.CustomerID, ProductID: cmd.ProductID}}, nil
	case CheckOut:
		if len(c.Items) == 0 {
			return nil, errEmpty
		}
		return []schemas.Event{schemas.CartCheckedOut{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID}}, nil
	}
	return nil, command.Invalid("command", "unknown command")
}

// Evolve folds events into the state.
func Evolve(c Cart, events ...schemas.Event) Cart {
	for _, e := range events {
		switch e := e.(type) {
		case schemas.ItemAddedToCart:
			items := slices.Clone(c.Items)
			if i := c.index(e.ProductID); i >= 0 {
				items[i].Quantity += int64(e.Quantity)
			} else {
				items = append(items, Item{ProductID: e.ProductID, Quantity: int64(e.Quantity)})
			}
			c.Items = items
		case schemas.ItemRemovedFromCart:
			c.Items = slices.DeleteFunc(slices.Clone(c.Items), func(it Item) bool { return it.ProductID == e.ProductID })
		case schemas.CartCheckedOut:
			c.Items = nil
		}
	}
	return c
}
