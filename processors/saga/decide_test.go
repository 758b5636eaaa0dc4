package saga

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"shopstream/producers/orders"
	"shopstream/schemas"
)

const order = "0b7c3f7e-5a55-4d4e-9f0e-6a1d2c3b4a51"

// Given the inputs before, when one more, then the commands and the state.
func TestDecide(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	timeouts := Timeouts{Card: 10 * time.Minute, Sepa: 72 * time.Hour}
	placed := func(method string) Placed {
		return Placed{At: at, Order: schemas.OrderPlaced{OrderID: order, CustomerID: "c", PaymentMethod: method, TotalCents: 700,
			Items: []schemas.OrderLine{{ProductID: "p", Quantity: 2, UnitPriceCents: 300}, {ProductID: "q", Quantity: 1, UnitPriceCents: 100}}}}
	}
	lines := []Line{{ProductID: "p", Quantity: 2}, {ProductID: "q", Quantity: 1}}
	paying := func(method, kind string, d time.Duration) State {
		return State{Status: StatusPaying, CustomerID: "c", Method: method, AmountCents: 700, Lines: lines,
			Deadline: &Deadline{Kind: kind, At: at.Add(d)}}
	}
	card := paying(orders.Card, DeadlinePayment, timeouts.Card)
	end := func(s State, status, reason string) State {
		s.Status, s.Reason, s.Deadline = status, reason, nil
		return s
	}
	refunded := func(s State) State { s.Refunded = true; return s }
	// The payment request carries the deadline (the first one, on a
	// redelivered OrderPlaced too).
	reserve := Reserve{OrderID: order, CustomerID: "c", Method: orders.Card, AmountCents: 700, Lines: lines, Deadline: at.Add(timeouts.Card)}
	ids := []string{"p", "q"}
	compensation := func(reason string, payment bool) []Command {
		cmds := []Command{CancelOrder{OrderID: order, Reason: reason}, ReleaseUnits{OrderID: order, Reason: reason, ProductIDs: ids}}
		if payment {
			cmds = append(cmds, CancelPayment{OrderID: order, Reason: reason})
		}
		return cmds
	}
	timedOut := end(card, StatusCancelled, orders.ReasonPaymentTimeout)
	late := Paid{Method: orders.Card, Reference: "ch_1"}
	cases := []struct {
		name  string
		given []Input
		when  Input
		then  []Command
		state State
		err   error
	}{
		// OrderPlaced: reserve and pay, with a deadline.
		{name: "card order placed", when: placed(orders.Card), then: []Command{reserve}, state: card},
		{name: "sepa order placed", when: placed(orders.Sepa),
			then:  []Command{Reserve{OrderID: order, CustomerID: "c", Method: orders.Sepa, AmountCents: 700, Lines: lines, Deadline: at.Add(timeouts.Sepa)}},
			state: paying(orders.Sepa, DeadlineSepa, timeouts.Sepa)},
		{name: "placed again keeps the first deadline", given: []Input{placed(orders.Card)},
			when: Placed{Order: placed(orders.Card).Order, At: at.Add(time.Hour)}, then: []Command{reserve}, state: card},
		{name: "placed after confirmed", given: []Input{placed(orders.Card), Paid{}}, when: placed(orders.Card),
			state: end(card, StatusConfirmed, "")},
		{name: "placed after cancelled", given: []Input{placed(orders.Card), Short{}}, when: placed(orders.Card),
			state: end(card, StatusCancelled, orders.ReasonOutOfStock)},

		// A short product: cancelled out_of_stock.
		{name: "short", given: []Input{placed(orders.Card)}, when: Short{},
			then:  []Command{CancelOrder{OrderID: order, Reason: orders.ReasonOutOfStock}},
			state: end(card, StatusCancelled, orders.ReasonOutOfStock)},
		{name: "short again", given: []Input{placed(orders.Card), Short{}}, when: Short{},
			then:  []Command{CancelOrder{OrderID: order, Reason: orders.ReasonOutOfStock}},
			state: end(card, StatusCancelled, orders.ReasonOutOfStock)},

		// PaymentSucceeded: confirmed.
		{name: "paid", given: []Input{placed(orders.Card)}, when: Paid{},
			then: []Command{ConfirmOrder{OrderID: order}}, state: end(card, StatusConfirmed, "")},
		{name: "paid again", given: []Input{placed(orders.Card), Paid{}}, when: Paid{},
			then: []Command{ConfirmOrder{OrderID: order}}, state: end(card, StatusConfirmed, "")},
		{name: "paid before placed", when: Paid{}, err: ErrUnknownOrder},

		// PaymentFailed: cancelled payment_failed, units released.
		{name: "declined", given: []Input{placed(orders.Card)}, when: Declined{Reason: "card_declined"},
			then: compensation(orders.ReasonPaymentFailed, false), state: end(card, StatusCancelled, orders.ReasonPaymentFailed)},
		{name: "declined again", given: []Input{placed(orders.Card), Declined{}}, when: Declined{Reason: "card_declined"},
			then: compensation(orders.ReasonPaymentFailed, false), state: end(card, StatusCancelled, orders.ReasonPaymentFailed)},
		{name: "declined before placed", when: Declined{}, err: ErrUnknownOrder},
		{name: "declined after the timeout", given: []Input{placed(orders.Card), Fired{Kind: DeadlinePayment}},
			when: Declined{Reason: orders.ReasonPaymentTimeout}, state: timedOut},

		// The deadline: cancelled payment_timeout, units released, payment cancelled.
		{name: "card payment times out", given: []Input{placed(orders.Card)}, when: Fired{Kind: DeadlinePayment},
			then: compensation(orders.ReasonPaymentTimeout, true), state: timedOut},
		{name: "sepa transfer times out", given: []Input{placed(orders.Sepa)}, when: Fired{Kind: DeadlineSepa},
			then:  compensation(orders.ReasonPaymentTimeout, true),
			state: end(paying(orders.Sepa, DeadlineSepa, timeouts.Sepa), StatusCancelled, orders.ReasonPaymentTimeout)},
		{name: "deadline of another kind", given: []Input{placed(orders.Card)}, when: Fired{Kind: DeadlineSepa}, state: card},
		{name: "deadline after paid", given: []Input{placed(orders.Card), Paid{}}, when: Fired{Kind: DeadlinePayment},
			state: end(card, StatusConfirmed, "")},
		{name: "deadline after declined", given: []Input{placed(orders.Card), Declined{}}, when: Fired{Kind: DeadlinePayment},
			state: end(card, StatusCancelled, orders.ReasonPaymentFailed)},
		{name: "deadline after short", given: []Input{placed(orders.Card), Short{}}, when: Fired{Kind: DeadlinePayment},
			state: end(card, StatusCancelled, orders.ReasonOutOfStock)},
		{name: "deadline again", given: []Input{placed(orders.Card), Fired{Kind: DeadlinePayment}}, when: Fired{Kind: DeadlinePayment},
			state: timedOut},
		{name: "deadline of an unseen order", when: Fired{Kind: DeadlinePayment}},

		// A charge after the timeout: refunded, never left on a cancelled order.
		{name: "paid after the timeout", given: []Input{placed(orders.Card), Fired{Kind: DeadlinePayment}}, when: late,
			then: []Command{RefundPayment{OrderID: order, Method: orders.Card, Reference: "ch_1"}}, state: refunded(timedOut)},
		{name: "paid again after the timeout", given: []Input{placed(orders.Card), Fired{Kind: DeadlinePayment}, late}, when: late,
			then: []Command{RefundPayment{OrderID: order, Method: orders.Card, Reference: "ch_1"}}, state: refunded(timedOut)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s State
			for _, in := range c.given {
				var err error
				if s, _, err = Decide(s, order, in, timeouts); err != nil {
					t.Fatalf("given %T: %v", in, err)
				}
			}
			got, cmds, err := Decide(s, order, c.when, timeouts)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if len(cmds) != 0 || len(c.then) != 0 {
				if !reflect.DeepEqual(cmds, c.then) {
					t.Fatalf("commands\n got %#v\nwant %#v", cmds, c.then)
				}
			}
			if !reflect.DeepEqual(got, c.state) {
				t.Fatalf("state\n got %+v\nwant %+v", got, c.state)
			}
		})
	}
}

// Decide must not change a state it was given: the step may be retried on it.
func TestDecideLeavesItsInputAlone(t *testing.T) {
	s, _, _ := Decide(State{}, order, Placed{At: time.Unix(0, 0), Order: schemas.OrderPlaced{OrderID: order, PaymentMethod: orders.Card,
		Items: []schemas.OrderLine{{ProductID: "p", Quantity: 1}}}}, Timeouts{Card: time.Second})
	before := s
	deadline := *s.Deadline
	Decide(s, order, Fired{Kind: DeadlinePayment}, Timeouts{})
	if !reflect.DeepEqual(s, before) || *s.Deadline != deadline {
		t.Fatalf("state changed to %+v", s)
	}
}
