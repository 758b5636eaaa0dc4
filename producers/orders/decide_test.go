package orders

import (
	"fmt"
	"reflect"
	"slices"
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

func items(n int) []Item {
	var its []Item
	for i := range n {
		its = append(its, Item{ProductID: product(100 + i), Quantity: 1})
	}
	return its
}

func TestValidate(t *testing.T) {
	p, q := product(1), product(2)
	ok := PlaceOrder{OrderID: order, CustomerID: customer, PaymentMethod: Card, Items: []Item{{p, 2}, {q, 1}}}
	with := func(f func(*PlaceOrder)) PlaceOrder { c := ok; f(&c); return c }
	cases := []struct {
		name  string
		when  PlaceOrder
		field string // "" for valid
	}{
		{name: "valid", when: ok},
		{name: "sepa", when: with(func(c *PlaceOrder) { c.PaymentMethod = Sepa })},
		{name: "no items: the cart", when: with(func(c *PlaceOrder) { c.Items = nil })},
		{name: "50 lines", when: with(func(c *PlaceOrder) { c.Items = items(50) })},
		{name: "99 units", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 99}} })},
		{name: "customer not a uuid", when: with(func(c *PlaceOrder) { c.CustomerID = "zizou" }), field: "customer_id"},
		{name: "no payment method", when: with(func(c *PlaceOrder) { c.PaymentMethod = "" }), field: "payment_method"},
		{name: "payment method cash", when: with(func(c *PlaceOrder) { c.PaymentMethod = "cash" }), field: "payment_method"},
		{name: "payment method Card", when: with(func(c *PlaceOrder) { c.PaymentMethod = "Card" }), field: "payment_method"},
		{name: "51 lines", when: with(func(c *PlaceOrder) { c.Items = items(51) }), field: "items"},
		{name: "product not a uuid", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 1}, {"maillot", 1}} }), field: "items[1].product_id"},
		{name: "product twice", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 1}, {q, 1}, {p, 2}} }), field: "items[2].product_id"},
		{name: "zero units", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 1}, {q, 0}} }), field: "items[1].quantity"},
		{name: "100 units", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 100}} }), field: "items[0].quantity"},
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

func TestDecide(t *testing.T) {
	p, q := product(1), product(2)
	place := PlaceOrder{OrderID: order, CustomerID: customer, PaymentMethod: Sepa, Items: []Item{{p, 2}, {q, 3}}}
	with := func(f func(*PlaceOrder)) PlaceOrder { c := place; f(&c); return c }
	prices := map[string]int64{p: 8999, q: 1250, product(3): 1}
	placed := schemas.OrderPlaced{OrderID: order, CustomerID: customer, PaymentMethod: Sepa,
		Items:      []schemas.OrderLine{{ProductID: p, Quantity: 2, UnitPriceCents: 8999}, {ProductID: q, Quantity: 3, UnitPriceCents: 1250}},
		TotalCents: 2*8999 + 3*1250}
	cases := []struct {
		name  string
		given []schemas.Event
		when  PlaceOrder
		then  []schemas.Event
		err   error
		field string
	}{
		{name: "place", when: place, then: []schemas.Event{placed}},
		{name: "place by card", when: with(func(c *PlaceOrder) { c.PaymentMethod = Card; c.Items = []Item{{q, 1}} }),
			then: []schemas.Event{schemas.OrderPlaced{OrderID: order, CustomerID: customer, PaymentMethod: Card,
				Items: []schemas.OrderLine{{ProductID: q, Quantity: 1, UnitPriceCents: 1250}}, TotalCents: 1250}}},
		{name: "place again", given: []schemas.Event{placed}, when: place, err: command.ErrConflict},
		{name: "no items", when: with(func(c *PlaceOrder) { c.Items = nil }), err: command.ErrInvalid, field: "items"},
		{name: "unpriced product", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 1}, {product(4), 1}} }), err: command.ErrNotFound},
		{name: "customer not a uuid", when: with(func(c *PlaceOrder) { c.CustomerID = "zizou" }), err: command.ErrInvalid, field: "customer_id"},
		{name: "payment method cash", when: with(func(c *PlaceOrder) { c.PaymentMethod = "cash" }), err: command.ErrInvalid, field: "payment_method"},
		{name: "product twice", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 1}, {p, 1}} }), err: command.ErrInvalid, field: "items[1].product_id"},
		{name: "100 units", when: with(func(c *PlaceOrder) { c.Items = []Item{{p, 100}} }), err: command.ErrInvalid, field: "items[0].quantity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Evolve(Order{}, c.given...)
			got, err := Decide(o, int64(len(c.given)), c.when, prices)
			commandtest.Then(t, got, err, c.then, c.err, c.field)
		})
	}
}

func TestEvolve(t *testing.T) {
	p, q := product(1), product(2)
	placed := schemas.OrderPlaced{OrderID: order, CustomerID: customer, PaymentMethod: Card,
		Items:      []schemas.OrderLine{{ProductID: p, Quantity: 2, UnitPriceCents: 8999}, {ProductID: q, Quantity: 3, UnitPriceCents: 1250}},
		TotalCents: 21748}
	want := Order{CustomerID: customer, PaymentMethod: Card, TotalCents: 21748, Status: StatusPlaced,
		Lines: []Line{{ProductID: p, Quantity: 2, UnitPriceCents: 8999}, {ProductID: q, Quantity: 3, UnitPriceCents: 1250}}}

	// What Decide decides is what Evolve makes the order.
	events, err := Decide(Order{}, 0, PlaceOrder{OrderID: order, CustomerID: customer, PaymentMethod: Card, Items: []Item{{p, 2}, {q, 3}}},
		map[string]int64{p: 8999, q: 1250})
	if err != nil {
		t.Fatal(err)
	}
	if got := Evolve(Order{}, events...); !reflect.DeepEqual(got, want) {
		t.Fatalf("placed\n got %+v\nwant %+v", got, want)
	}
	if got := Evolve(Order{}, placed); !reflect.DeepEqual(got, want) {
		t.Fatalf("placed\n got %+v\nwant %+v", got, want)
	}

	confirmed := want
	confirmed.Status = StatusConfirmed
	if got := Evolve(Order{}, placed, schemas.OrderConfirmed{OrderID: order}); !reflect.DeepEqual(got, confirmed) {
		t.Fatalf("confirmed\n got %+v\nwant %+v", got, confirmed)
	}
	cancelled := want
	cancelled.Status = StatusCancelled
	if got := Evolve(Order{}, placed, schemas.OrderCancelled{OrderID: order, Reason: "payment failed"}); !reflect.DeepEqual(got, cancelled) {
		t.Fatalf("cancelled\n got %+v\nwant %+v", got, cancelled)
	}
}

func TestDecideTransition(t *testing.T) {
	placed := []schemas.Event{schemas.OrderPlaced{OrderID: order, CustomerID: customer, PaymentMethod: Card,
		Items: []schemas.OrderLine{{ProductID: product(1), Quantity: 1, UnitPriceCents: 100}}, TotalCents: 100}}
	then := func(e ...schemas.Event) []schemas.Event { return append(slices.Clone(placed), e...) }
	cases := []struct {
		name  string
		given []schemas.Event
		when  Transition
		then  []schemas.Event
		err   error
		field string
	}{
		{name: "confirm", given: placed, when: Confirm{}, then: []schemas.Event{schemas.OrderConfirmed{OrderID: order}}},
		{name: "confirm again", given: then(schemas.OrderConfirmed{OrderID: order}), when: Confirm{}},
		{name: "cancel out of stock", given: placed, when: Cancel{Reason: ReasonOutOfStock},
			then: []schemas.Event{schemas.OrderCancelled{OrderID: order, Reason: ReasonOutOfStock}}},
		{name: "cancel payment failed", given: placed, when: Cancel{Reason: ReasonPaymentFailed},
			then: []schemas.Event{schemas.OrderCancelled{OrderID: order, Reason: ReasonPaymentFailed}}},
		{name: "cancel payment timeout", given: placed, when: Cancel{Reason: ReasonPaymentTimeout},
			then: []schemas.Event{schemas.OrderCancelled{OrderID: order, Reason: ReasonPaymentTimeout}}},
		{name: "cancel again", given: then(schemas.OrderCancelled{OrderID: order, Reason: ReasonPaymentTimeout}), when: Cancel{Reason: ReasonPaymentTimeout}},
		{name: "cancel for an unknown reason", given: placed, when: Cancel{Reason: "bored"}, err: command.ErrInvalid, field: "reason"},
		{name: "cancel a confirmed order", given: then(schemas.OrderConfirmed{OrderID: order}), when: Cancel{Reason: ReasonPaymentTimeout}, err: command.ErrConflict},
		{name: "confirm a cancelled order", given: then(schemas.OrderCancelled{OrderID: order, Reason: ReasonPaymentTimeout}), when: Confirm{}, err: command.ErrConflict},
		{name: "confirm an unknown order", when: Confirm{}, err: command.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecideTransition(Evolve(Order{}, c.given...), order, c.when)
			commandtest.Then(t, got, err, c.then, c.err, c.field)
		})
	}
}
