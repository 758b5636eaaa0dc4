// Package catalog is the write service of the product catalogue. It turns
// product commands into events on shop.catalog.products.v1, through the
// PostgreSQL write model (schema "catalog") and the transactional outbox:
// an accepted command has its events published at least once, in order per
// product; a refused one writes nothing.
package catalog

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// Product is the write-side state of a product: what the rules need.
type Product struct {
	Title      string `json:"title"`
	PriceCents int64  `json:"price_cents"`
	Photo      string `json:"photo,omitempty"`
	Stock      int64  `json:"stock"` // units registered or restocked so far (the saleable stock lives in inventory)
}

// Command is a command on one product.
type Command interface{ productID() string }

// RegisterProduct puts a new product on sale.
type RegisterProduct struct {
	ProductID  string
	Title      string
	PriceCents int64
	Quantity   int64
	Photo      string // optional absolute http(s) URL
}

// RestockProduct adds units to a product.
type RestockProduct struct {
	ProductID string
	Quantity  int64
}

func (c RegisterProduct) productID() string { return c.ProductID }
func (c RestockProduct) productID() string  { return c.ProductID }

// CommandName names the command on the bus.
func (RegisterProduct) CommandName() string { return "catalog.RegisterProduct" }

// CommandName names the command on the bus.
func (RestockProduct) CommandName() string { return "catalog.RestockProduct" }

// Validate checks the fields on their own.
func (c RegisterProduct) Validate() error {
	title := strings.TrimSpace(c.Title)
	switch {
	case title == "":
		return command.Invalid("title", "must not be empty")
	case utf8.RuneCountInString(title) > MaxTitle:
		return command.Invalid("title", "must be at most 200 characters")
	case c.PriceCents <= 0 || c.PriceCents > MaxPrice:
		return command.Invalid("price_cents", "must be between 1 and 100000000")
	case c.Quantity < 0 || c.Quantity > MaxQuantity:
		return command.Invalid("quantity", "must be between 0 and 1000000")
	case c.Photo != "" && !isWebURL(c.Photo):
		return command.Invalid("photo", "must be an absolute http or https URL")
	}
	return nil
}

// Validate checks the fields on their own.
func (c RestockProduct) Validate() error {
	if c.Quantity <= 0 || c.Quantity > MaxQuantity {
		return command.Invalid("quantity", "must be between 1 and 1000000")
	}
	return nil
}

// Limits of a product's fields.
const (
	MaxTitle    = 200
	MaxPrice    = 100_000_000 // one million euros in cents
	MaxQuantity = 1_000_000
)

// Decide is the pure rule of the catalogue: given a product's state and
// version (0 when it does not exist), the events of cmd, or why not.
func Decide(p Product, version int64, cmd Command) ([]schemas.Event, error) {
	switch c := cmd.(type) {
	case RegisterProduct:
		if version > 0 {
			return nil, command.ErrConflict
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		ev := schemas.ProductRegistered{ProductID: c.ProductID, Title: strings.TrimSpace(c.Title), PriceCents: c.PriceCents, Currency: "EUR", InitialStock: int32(c.Quantity)}
		if c.Photo != "" {
			ev.PhotoURL = &c.Photo
		}
		return []schemas.Event{ev}, nil
	case RestockProduct:
		if version == 0 {
			return nil, fmt.Errorf("product %s: %w", c.ProductID, command.ErrNotFound)
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		if p.Stock+c.Quantity > 100*MaxQuantity {
			return nil, command.Invalid("quantity", "would take the product over 100000000 units in all")
		}
		return []schemas.Event{schemas.ProductRestocked{ProductID: c.ProductID, Quantity: int32(c.Quantity)}}, nil
	}
	return nil, command.Invalid("command", "unknown command")
}

// Evolve folds events into the state.
func Evolve(p Product, events ...schemas.Event) Product {
	for _, e := range events {
		switch e := e.(type) {
		case schemas.ProductRegistered:
			p = Product{Title: e.Title, PriceCents: e.PriceCents, Stock: int64(e.InitialStock)}
			if e.PhotoURL != nil {
				p.Photo = *e.PhotoURL
			}
		case schemas.ProductRestocked:
			p.Stock += int64(e.Quantity)
		case schemas.PhotoWasAdded:
			p.Photo = e.PhotoURL
		}
	}
	return p
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && len(s) <= 2048
}
