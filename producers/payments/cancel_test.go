package payments

import (
	"testing"

	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

// The saga's Cancel stops a payment with no outcome yet; a charge that the
// provider reports after it is still recorded, once, for the saga to refund.
func TestDecideCancelAndLateCharge(t *testing.T) {
	requested := schemas.PaymentRequested{OrderID: order, Method: "card", AmountCents: 4200}
	cancelled := schemas.PaymentFailed{OrderID: order, Method: "card", Reason: ReasonTimeout}
	lateCharge := schemas.PaymentSucceeded{OrderID: order, Method: "card", AmountCents: 4200, ProviderReference: "ch_1"}
	succeeded := schemas.PaymentSucceeded{OrderID: order, Method: "card", AmountCents: 4200, ProviderReference: "ch_1"}
	declined := schemas.PaymentFailed{OrderID: order, Method: "card", Reason: "card_declined"}
	cancel := Cancel{OrderID: order}
	cases := []struct {
		name   string
		given  []schemas.Event
		when   Command
		then   []schemas.Event
		status string
	}{
		{name: "cancel a requested payment", given: []schemas.Event{requested}, when: cancel, then: []schemas.Event{cancelled}, status: StatusCancelled},
		{name: "cancel again", given: []schemas.Event{requested, cancelled}, when: cancel, status: StatusCancelled},
		{name: "cancel a payment never requested", when: cancel},
		{name: "cancel a paid payment", given: []schemas.Event{requested, succeeded}, when: cancel, status: StatusSucceeded},
		{name: "cancel a declined payment", given: []schemas.Event{requested, declined}, when: cancel, status: StatusFailed},
		{name: "charged after the cancel", given: []schemas.Event{requested, cancelled},
			when: Settle{OrderID: order, Succeeded: true, Reference: "ch_1"}, then: []schemas.Event{lateCharge}, status: StatusSucceeded},
		{name: "charged after the cancel, reported again", given: []schemas.Event{requested, cancelled, lateCharge},
			when: Settle{OrderID: order, Succeeded: true, Reference: "ch_1"}, status: StatusSucceeded},
		{name: "declined after the cancel", given: []schemas.Event{requested, cancelled},
			when: Settle{OrderID: order, Reason: "card_declined"}, status: StatusCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Evolve(Payment{}, c.given...)
			got, err := Decide(p, int64(len(c.given)), c.when)
			commandtest.Then(t, got, err, c.then, nil, "")
			if s := Evolve(p, got...).Status; s != c.status {
				t.Fatalf("status %q, want %q", s, c.status)
			}
		})
	}
}
