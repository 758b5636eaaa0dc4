package inventory

import (
	"errors"
	"maps"
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

const (
	order1 = "0b7c3f7e-5a55-4d4e-9f0e-6a1d2c3b4a51"
	order2 = "0b7c3f7e-5a55-4d4e-9f0e-6a1d2c3b4a52"
)

type bogus struct{}

func (bogus) productID() string { return "p" }

func TestDecide(t *testing.T) {
	received := func(q, available, version int64) schemas.Event {
		return schemas.StockReceived{ProductID: "p", Quantity: int32(q), Available: int32(available), CatalogVersion: version}
	}
	reserved := func(order string, q, remaining int64) schemas.Event {
		return schemas.StockReserved{ProductID: "p", OrderID: order, Quantity: int32(q), Remaining: int32(remaining)}
	}
	released := schemas.StockReleased{ProductID: "p", OrderID: order1, Quantity: 2, Reason: "payment failed"}
	five := []schemas.Event{received(5, 5, 1)}
	cases := []struct {
		name    string
		given   []schemas.Event
		when    Command
		then    []schemas.Event
		err     error
		field   string
		short   *command.Shortage // the refusal, when a Shortage
		soldOut bool
		state   *Stock // after Evolve of given and then, when checked
	}{
		{name: "receive initial stock", when: ReceiveStock{ProductID: "p", Quantity: 5, CatalogVersion: 1},
			then: five, state: &Stock{Available: 5, CatalogVersion: 1}},
		{name: "receive no initial stock", when: ReceiveStock{ProductID: "p", Quantity: 0, CatalogVersion: 1},
			then: []schemas.Event{received(0, 0, 1)}, state: &Stock{CatalogVersion: 1}},
		{name: "receive restock", given: five, when: ReceiveStock{ProductID: "p", Quantity: 3, CatalogVersion: 2},
			then: []schemas.Event{received(3, 8, 2)}, state: &Stock{Available: 8, CatalogVersion: 2}},
		{name: "receive restock over a reservation", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3)},
			when: ReceiveStock{ProductID: "p", Quantity: 3, CatalogVersion: 2},
			then: []schemas.Event{received(3, 6, 2)}, state: &Stock{Available: 6, CatalogVersion: 2, Reserved: map[string]int64{order1: 2}}},
		{name: "receive same catalogue version again", given: five, when: ReceiveStock{ProductID: "p", Quantity: 5, CatalogVersion: 1},
			state: &Stock{Available: 5, CatalogVersion: 1}},
		{name: "receive older catalogue version", given: []schemas.Event{received(5, 5, 1), received(3, 8, 2)},
			when: ReceiveStock{ProductID: "p", Quantity: 5, CatalogVersion: 1}, state: &Stock{Available: 8, CatalogVersion: 2}},
		{name: "receive negative", when: ReceiveStock{ProductID: "p", Quantity: -1, CatalogVersion: 1}, err: command.ErrInvalid, field: "quantity"},

		{name: "reserve", given: five, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 2},
			then:  []schemas.Event{reserved(order1, 2, 3)},
			state: &Stock{Available: 3, CatalogVersion: 1, Reserved: map[string]int64{order1: 2}}},
		{name: "reserve the last units", given: five, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 5},
			then:  []schemas.Event{reserved(order1, 5, 0), schemas.ProductSoldOut{ProductID: "p"}},
			state: &Stock{Available: 0, CatalogVersion: 1, Reserved: map[string]int64{order1: 5}}},
		{name: "reserve 99", given: []schemas.Event{received(100, 100, 1)}, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 99},
			then: []schemas.Event{reserved(order1, 99, 1)}},
		{name: "reserve for a second order", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3)},
			when:  Reserve{ProductID: "p", OrderID: order2, Quantity: 3},
			then:  []schemas.Event{reserved(order2, 3, 0), schemas.ProductSoldOut{ProductID: "p"}},
			state: &Stock{Available: 0, CatalogVersion: 1, Reserved: map[string]int64{order1: 2, order2: 3}}},
		{name: "reserve more than available", given: five, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 6},
			err: command.ErrConflict, short: &command.Shortage{ProductID: "p", Requested: 6, Available: 5}},
		{name: "reserve sold out", given: []schemas.Event{received(2, 2, 1), reserved(order1, 2, 0), schemas.ProductSoldOut{ProductID: "p"}},
			when: Reserve{ProductID: "p", OrderID: order2, Quantity: 1},
			err:  command.ErrConflict, short: &command.Shortage{ProductID: "p", Requested: 1, Available: 0}, soldOut: true},
		{name: "reserve with no stock received", given: []schemas.Event{received(0, 0, 1)}, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 1},
			err: command.ErrConflict, short: &command.Shortage{ProductID: "p", Requested: 1, Available: 0}, soldOut: true},
		{name: "reserve unknown product", when: Reserve{ProductID: "p", OrderID: order1, Quantity: 1},
			err: command.ErrConflict, short: &command.Shortage{ProductID: "p", Requested: 1, Unknown: true}, soldOut: true},
		{name: "reserve again for the same order", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3)},
			when:  Reserve{ProductID: "p", OrderID: order1, Quantity: 2},
			state: &Stock{Available: 3, CatalogVersion: 1, Reserved: map[string]int64{order1: 2}}},
		{name: "reserve again for the same order once sold out",
			given: []schemas.Event{received(2, 2, 1), reserved(order1, 2, 0), schemas.ProductSoldOut{ProductID: "p"}},
			when:  Reserve{ProductID: "p", OrderID: order1, Quantity: 2},
			state: &Stock{Available: 0, CatalogVersion: 1, Reserved: map[string]int64{order1: 2}}},
		{name: "reserve order not a uuid", given: five, when: Reserve{ProductID: "p", OrderID: "o", Quantity: 1}, err: command.ErrInvalid, field: "order_id"},
		{name: "reserve zero", given: five, when: Reserve{ProductID: "p", OrderID: order1}, err: command.ErrInvalid, field: "quantity"},
		{name: "reserve 100", given: []schemas.Event{received(200, 200, 1)}, when: Reserve{ProductID: "p", OrderID: order1, Quantity: 100},
			err: command.ErrInvalid, field: "quantity"},

		{name: "reject", given: []schemas.Event{received(1, 1, 1)}, when: Reject{ProductID: "p", OrderID: order2, Quantity: 3},
			then:  []schemas.Event{schemas.StockReservationRejected{ProductID: "p", OrderID: order2, Quantity: 3, Available: 1}},
			state: &Stock{Available: 1, CatalogVersion: 1, Rejected: map[string]bool{order2: true}}},
		{name: "reject again changes nothing", given: []schemas.Event{received(1, 1, 1), rejected(order2, 3, 1)},
			when:  Reject{ProductID: "p", OrderID: order2, Quantity: 3},
			state: &Stock{Available: 1, CatalogVersion: 1, Rejected: map[string]bool{order2: true}}},
		{name: "reserve an order rejected before, even after a restock", given: []schemas.Event{received(1, 1, 1), rejected(order2, 3, 1), received(10, 11, 2)},
			when: Reserve{ProductID: "p", OrderID: order2, Quantity: 3},
			err:  command.ErrConflict, short: &command.Shortage{ProductID: "p", Requested: 3, Available: 11}},
		{name: "reject order not a uuid", given: five, when: Reject{ProductID: "p", OrderID: "o", Quantity: 3}, err: command.ErrInvalid, field: "order_id"},
		{name: "reject zero", given: five, when: Reject{ProductID: "p", OrderID: order2}, err: command.ErrInvalid, field: "quantity"},

		{name: "release", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3)},
			when: Release{ProductID: "p", OrderID: order1, Reason: "payment failed"}, then: []schemas.Event{released},
			state: &Stock{Available: 5, CatalogVersion: 1}},
		{name: "release after sold out", given: []schemas.Event{received(2, 2, 1), reserved(order1, 2, 0), schemas.ProductSoldOut{ProductID: "p"}},
			when: Release{ProductID: "p", OrderID: order1, Reason: "payment failed"}, then: []schemas.Event{released},
			state: &Stock{Available: 2, CatalogVersion: 1}},
		{name: "release one order of two", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3), reserved(order2, 1, 2)},
			when: Release{ProductID: "p", OrderID: order1, Reason: "payment failed"}, then: []schemas.Event{released},
			state: &Stock{Available: 4, CatalogVersion: 1, Reserved: map[string]int64{order2: 1}}},
		{name: "release again", given: []schemas.Event{received(5, 5, 1), reserved(order1, 2, 3), released},
			when: Release{ProductID: "p", OrderID: order1, Reason: "payment failed"}, state: &Stock{Available: 5, CatalogVersion: 1}},
		{name: "release never reserved", given: five, when: Release{ProductID: "p", OrderID: order1, Reason: "payment failed"},
			state: &Stock{Available: 5, CatalogVersion: 1}},

		{name: "unknown command", given: five, when: bogus{}, err: command.ErrInvalid, field: "command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := Evolve(Stock{}, c.given...)
			got, err := Decide(state, int64(len(c.given)), c.when)
			commandtest.Then(t, got, err, c.then, c.err, c.field)
			if c.short != nil {
				var sh *command.Shortage
				if !errors.As(err, &sh) {
					t.Fatalf("error %v is not a *command.Shortage", err)
				}
				if *sh != *c.short {
					t.Fatalf("shortage %+v, want %+v", *sh, *c.short)
				}
				if sh.SoldOut() != c.soldOut {
					t.Fatalf("SoldOut() = %v, want %v", sh.SoldOut(), c.soldOut)
				}
			} else if sh := (*command.Shortage)(nil); errors.As(err, &sh) {
				t.Fatalf("unexpected shortage %v", err)
			}
			if c.state != nil {
				if s := Evolve(state, got...); !sameStock(s, *c.state) {
					t.Fatalf("state after Evolve %+v, want %+v", s, *c.state)
				}
			}
		})
	}
}

// sameStock compares stocks, an empty reservation map being no map.
func sameStock(a, b Stock) bool {
	return a.Available == b.Available && a.CatalogVersion == b.CatalogVersion && maps.Equal(a.Reserved, b.Reserved)
}

// Evolve must not change a state it was given: a store may still hold it.
func TestEvolveLeavesItsInputAlone(t *testing.T) {
	before := Evolve(Stock{},
		schemas.StockReceived{ProductID: "p", Quantity: 5, Available: 5, CatalogVersion: 1},
		schemas.StockReserved{ProductID: "p", OrderID: order1, Quantity: 2, Remaining: 3})
	Evolve(before, schemas.StockReserved{ProductID: "p", OrderID: order2, Quantity: 1, Remaining: 2})
	Evolve(before, schemas.StockReleased{ProductID: "p", OrderID: order1, Quantity: 2})
	if want := (Stock{Available: 3, CatalogVersion: 1, Reserved: map[string]int64{order1: 2}}); !sameStock(before, want) {
		t.Fatalf("state changed to %+v, want %+v", before, want)
	}
}

func rejected(order string, quantity, available int32) schemas.Event {
	return schemas.StockReservationRejected{ProductID: "p", OrderID: order, Quantity: quantity, Available: available}
}
