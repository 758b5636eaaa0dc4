package payments

import (
	"time"

	"testing"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

const (
	order    = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	customer = "9d3b5a7c-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
)

type bogus struct{}

func (bogus) orderID() string { return order }

// TestDecide is I2 at the write side: one payment per order, requested
// once, settled once, so that neither a redelivered request nor a
// redelivered outcome charges, or counts a charge, twice.
func TestDecide(t *testing.T) {
	card := Request{OrderID: order, CustomerID: customer, Method: "card", AmountCents: 4200}
	sepa := Request{OrderID: order, CustomerID: customer, Method: "sepa", AmountCents: 4200}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	deadline := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	deadlineUTC := time.Date(2026, 12, 5, 9, 0, 0, 123000000, time.UTC)
	cardRequested := schemas.PaymentRequested{OrderID: order, Method: "card", AmountCents: 4200}
	sepaRequested := []schemas.Event{schemas.PaymentRequested{OrderID: order, Method: "sepa", AmountCents: 4200},
		schemas.SepaTransferRequested{OrderID: order, CustomerID: customer, AmountCents: 4200}}
	cardSucceeded := schemas.PaymentSucceeded{OrderID: order, Method: "card", AmountCents: 4200, ProviderReference: "ch_1"}
	cardFailed := schemas.PaymentFailed{OrderID: order, Method: "card", Reason: "card declined"}
	succeed := Settle{OrderID: order, Succeeded: true, Reference: "ch_1"}
	fail := Settle{OrderID: order, Reason: "card declined"}
	given := func(evs ...schemas.Event) []schemas.Event { return evs }
	state := func(method, customer, status string) *Payment {
		return &Payment{CustomerID: customer, Method: method, AmountCents: 4200, Status: status}
	}

	rule := commandtest.Rule[Payment, Command]{Decide: Decide, Evolve: Evolve, Idempotent: true}
	rule.Run(t, []commandtest.Case[Payment, Command]{
		// Request: the saga asks once the order's units are held.
		{Name: "request card", When: card, Then: given(cardRequested),
			// The card payment keeps no customer: PaymentRequested has no such field.
			State: state("card", "", StatusRequested)},
		{Name: "request with the saga's deadline: the request carries it, to the millisecond, in UTC",
			When:  with(card, func(r *Request) { r.ExpiresAt = deadline }),
			Then:  given(schemas.PaymentRequested{OrderID: order, Method: "card", AmountCents: 4200, ExpiresAt: &deadlineUTC}),
			State: state("card", "", StatusRequested)},
		{Name: "request sepa: the transfer goes to the single SEPA caller too", When: sepa, Then: sepaRequested,
			State: state("sepa", customer, StatusRequested)},
		{Name: "request again: no second charge", Given: given(cardRequested), When: card,
			State: state("card", "", StatusRequested)},
		{Name: "request sepa again: no second transfer", Given: sepaRequested, When: sepa,
			State: state("sepa", customer, StatusRequested)},
		{Name: "request again otherwise: the first request stands", Given: given(cardRequested),
			When: with(sepa, func(r *Request) { r.AmountCents = 9900 }), State: state("card", "", StatusRequested)},
		{Name: "request after success: no second charge", Given: given(cardRequested, cardSucceeded), When: card,
			State: state("card", "", StatusSucceeded)},
		{Name: "request after failure: one payment per order, no retry", Given: given(cardRequested, cardFailed), When: card,
			State: state("card", "", StatusFailed)},
		{Name: "request again, invalid: the first request stands", Given: given(cardRequested),
			When: with(card, func(r *Request) { r.AmountCents = 0 }), State: state("card", "", StatusRequested)},
		{Name: "request nothing to pay", When: with(card, func(r *Request) { r.AmountCents = 0 }),
			Err: command.ErrInvalid, Field: "amount_cents"},
		{Name: "request a negative amount", When: with(sepa, func(r *Request) { r.AmountCents = -1 }),
			Err: command.ErrInvalid, Field: "amount_cents"},
		{Name: "request cash", When: with(card, func(r *Request) { r.Method = "cash" }), Err: command.ErrInvalid, Field: "method"},
		{Name: "request no method", When: with(card, func(r *Request) { r.Method = "" }), Err: command.ErrInvalid, Field: "method"},
		{Name: "request Card", When: with(card, func(r *Request) { r.Method = "Card" }), Err: command.ErrInvalid, Field: "method"},
		{Name: "request cash of nothing: the amount is named first",
			When: with(card, func(r *Request) { r.Method, r.AmountCents = "cash", 0 }), Err: command.ErrInvalid, Field: "amount_cents"},

		// Settle: the provider's outcome; the first one recorded wins.
		{Name: "settle card succeeded: amount and method from the request", Given: given(cardRequested), When: succeed,
			Then: given(cardSucceeded), State: state("card", "", StatusSucceeded)},
		{Name: "settle sepa succeeded", Given: sepaRequested, When: Settle{OrderID: order, Succeeded: true, Reference: "sepa_1"},
			Then:  given(schemas.PaymentSucceeded{OrderID: order, Method: "sepa", AmountCents: 4200, ProviderReference: "sepa_1"}),
			State: state("sepa", customer, StatusSucceeded)},
		{Name: "settle card failed", Given: given(cardRequested), When: fail,
			Then: given(cardFailed), State: state("card", "", StatusFailed)},
		{Name: "settle sepa failed", Given: sepaRequested, When: Settle{OrderID: order, Reason: "insufficient funds"},
			Then:  given(schemas.PaymentFailed{OrderID: order, Method: "sepa", Reason: "insufficient funds"}),
			State: state("sepa", customer, StatusFailed)},
		{Name: "settle succeeded again: the charge counts once", Given: given(cardRequested, cardSucceeded), When: succeed,
			State: state("card", "", StatusSucceeded)},
		{Name: "settle succeeded again with another reference", Given: given(cardRequested, cardSucceeded),
			When: Settle{OrderID: order, Succeeded: true, Reference: "ch_2"}, State: state("card", "", StatusSucceeded)},
		{Name: "settle failed after success: a charged order is not cancelled", Given: given(cardRequested, cardSucceeded), When: fail,
			State: state("card", "", StatusSucceeded)},
		{Name: "settle succeeded after failure: a cancelled order is not confirmed", Given: given(cardRequested, cardFailed), When: succeed,
			State: state("card", "", StatusFailed)},
		{Name: "settle failed again: the order is cancelled once", Given: given(cardRequested, cardFailed), When: fail,
			State: state("card", "", StatusFailed)},
		{Name: "settle succeeded, never requested", When: succeed, Err: command.ErrNotFound},
		{Name: "settle failed, never requested", When: fail, Err: command.ErrNotFound},

		{Name: "unknown command", Given: given(cardRequested), When: bogus{}, Err: command.ErrInvalid, Field: "command"},
	})
}
