package carts

import (
	"fmt"
	"reflect"
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

const (
	customer = "9d3b5a7c-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
	order    = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
)

// product is the id of the i-th product.
func product(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

type bogus struct{}

func (bogus) customerID() string { return customer }

func TestDecide(t *testing.T) {
	p, q := product(1), product(2)
	added := func(id string, n int64) schemas.Event {
		return schemas.ItemAddedToCart{CustomerID: customer, ProductID: id, Quantity: int32(n)}
	}
	add := AddItem{CustomerID: customer, ProductID: p, Quantity: 2}
	with := func(f func(*AddItem)) AddItem { c := add; f(&c); return c }
	lines := func(n int) []schemas.Event {
		var events []schemas.Event
		for i := range n {
			events = append(events, added(product(100+i), 1))
		}
		return events
	}
	cases := []struct {
		name  string
		given []schemas.Event
		when  Command
		then  []schemas.Event
		err   error
		field string
		items []Item // of the cart after Evolve of given and then, when no error
	}{
		{name: "add", when: add, then: []schemas.Event{added(p, 2)}, items: []Item{{p, 2}}},
		{name: "add more of a product", given: []schemas.Event{added(p, 2)}, when: with(func(c *AddItem) { c.Quantity = 3 }),
			then: []schemas.Event{added(p, 3)}, items: []Item{{p, 5}}},
		{name: "add another product", given: []schemas.Event{added(p, 2)}, when: with(func(c *AddItem) { c.ProductID = q; c.Quantity = 1 }),
			then: []schemas.Event{added(q, 1)}, items: []Item{{p, 2}, {q, 1}}},
		{name: "add up to 99 units", given: []schemas.Event{added(p, 90)}, when: with(func(c *AddItem) { c.Quantity = 9 }),
			then: []schemas.Event{added(p, 9)}, items: []Item{{p, 99}}},
		{name: "add 99 units at once", when: with(func(c *AddItem) { c.Quantity = 99 }), then: []schemas.Event{added(p, 99)}, items: []Item{{p, 99}}},
		{name: "add over 99 units", given: []schemas.Event{added(p, 90)}, when: with(func(c *AddItem) { c.Quantity = 10 }),
			err: command.ErrInvalid, field: "quantity"},
		{name: "add zero", when: with(func(c *AddItem) { c.Quantity = 0 }), err: command.ErrInvalid, field: "quantity"},
		{name: "add 100", when: with(func(c *AddItem) { c.Quantity = 100 }), err: command.ErrInvalid, field: "quantity"},
		{name: "customer not a uuid", when: with(func(c *AddItem) { c.CustomerID = "zizou" }), err: command.ErrInvalid, field: "customer_id"},
		{name: "product not a uuid", when: with(func(c *AddItem) { c.ProductID = "maillot" }), err: command.ErrInvalid, field: "product_id"},
		{name: "add the 50th product", given: lines(49), when: add, then: []schemas.Event{added(p, 2)}},
		{name: "add the 51st product", given: lines(50), when: add, err: command.ErrInvalid, field: "product_id"},
		{name: "add more of a product to a full cart", given: lines(50), when: with(func(c *AddItem) { c.ProductID = product(100) }),
			then: []schemas.Event{added(product(100), 2)}},
		{name: "add again what was removed", given: []schemas.Event{added(p, 2), schemas.ItemRemovedFromCart{CustomerID: customer, ProductID: p}},
			when: with(func(c *AddItem) { c.Quantity = 1 }), then: []schemas.Event{added(p, 1)}, items: []Item{{p, 1}}},

		{name: "remove", given: []schemas.Event{added(p, 2), added(q, 1)}, when: RemoveItem{CustomerID: customer, ProductID: p},
			then: []schemas.Event{schemas.ItemRemovedFromCart{CustomerID: customer, ProductID: p}}, items: []Item{{q, 1}}},
		{name: "remove the last item", given: []schemas.Event{added(p, 2)}, when: RemoveItem{CustomerID: customer, ProductID: p},
			then: []schemas.Event{schemas.ItemRemovedFromCart{CustomerID: customer, ProductID: p}}, items: []Item{}},
		{name: "remove what the cart does not hold", given: []schemas.Event{added(q, 1)}, when: RemoveItem{CustomerID: customer, ProductID: p},
			err: command.ErrNotFound},
		{name: "remove twice", given: []schemas.Event{added(p, 2), schemas.ItemRemovedFromCart{CustomerID: customer, ProductID: p}},
			when: RemoveItem{CustomerID: customer, ProductID: p}, err: command.ErrNotFound},

		{name: "check out", given: []schemas.Event{added(p, 2), added(q, 1)}, when: CheckOut{CustomerID: customer, OrderID: order},
			then: []schemas.Event{schemas.CartCheckedOut{CustomerID: customer, OrderID: order}}, items: []Item{}},
		{name: "check out an empty cart", when: CheckOut{CustomerID: customer, OrderID: order}, err: command.ErrInvalid, field: "items"},
		{name: "check out twice", given: []schemas.Event{added(p, 2), schemas.CartCheckedOut{CustomerID: customer, OrderID: order}},
			when: CheckOut{CustomerID: customer, OrderID: order}, err: command.ErrInvalid, field: "items"},

		{name: "unknown command", when: bogus{}, err: command.ErrInvalid, field: "command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cart := Evolve(Cart{}, c.given...)
			got, err := Decide(cart, c.when)
			commandtest.Then(t, got, err, c.then, c.err, c.field)
			if c.items != nil {
				if after := Evolve(cart, got...); !sameItems(after.Items, c.items) {
					t.Fatalf("items after Evolve %v, want %v", after.Items, c.items)
				}
			}
		})
	}
}

// sameItems compares lines in order, an empty cart being no slice.
func sameItems(a, b []Item) bool { return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b) }

func TestQuantity(t *testing.T) {
	c := Evolve(Cart{}, schemas.ItemAddedToCart{ProductID: "p", Quantity: 2}, schemas.ItemAddedToCart{ProductID: "p", Quantity: 3})
	if n := c.Quantity("p"); n != 5 {
		t.Fatalf("Quantity(p) = %d, want 5", n)
	}
	if n := c.Quantity("q"); n != 0 {
		t.Fatalf("Quantity(q) = %d, want 0", n)
	}
}

// Evolve must not change a cart it was given: a store may still hold it.
func TestEvolveLeavesItsInputAlone(t *testing.T) {
	before := Evolve(Cart{}, schemas.ItemAddedToCart{ProductID: "p", Quantity: 2}, schemas.ItemAddedToCart{ProductID: "q", Quantity: 1})
	Evolve(before, schemas.ItemAddedToCart{ProductID: "p", Quantity: 3})
	Evolve(before, schemas.ItemRemovedFromCart{ProductID: "p"})
	Evolve(before, schemas.CartCheckedOut{})
	if want := []Item{{"p", 2}, {"q", 1}}; !reflect.DeepEqual(before.Items, want) {
		t.Fatalf("items changed to %v, want %v", before.Items, want)
	}
}

// Validate alone is what the bus's Validation middleware checks, before
// any I/O.
func TestValidate(t *testing.T) {
	ok := AddItem{CustomerID: customer, ProductID: product(1), Quantity: 1}
	with := func(f func(*AddItem)) AddItem { c := ok; f(&c); return c }
	cases := []struct {
		name  string
		when  AddItem
		field string // "" for valid
	}{
		{name: "valid", when: ok},
		{name: "99 units", when: with(func(c *AddItem) { c.Quantity = 99 })},
		{name: "zero", when: with(func(c *AddItem) { c.Quantity = 0 }), field: "quantity"},
		{name: "100 units", when: with(func(c *AddItem) { c.Quantity = 100 }), field: "quantity"},
		{name: "customer not a uuid", when: with(func(c *AddItem) { c.CustomerID = "" }), field: "customer_id"},
		{name: "product not a uuid", when: with(func(c *AddItem) { c.ProductID = "" }), field: "product_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want error
			if c.field != "" {
				want = command.ErrInvalid
			}
			commandtest.Then(t, nil, c.when.Validate(), nil, want, c.field)
		})
	}
}
