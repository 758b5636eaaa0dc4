package notifications

import (
	"testing"
	"time"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

const order = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

type bogus struct{}

func (bogus) orderID() string { return order }

// TestDecide is I3 at the write side: one email per order, requested
// once and recorded as sent once.
func TestDecide(t *testing.T) {
	ref := "billing/documents/" + order
	invoice := Request{OrderID: order, To: "zizou@example.com", Subject: "Your shopstream invoice INV-2026-000042",
		Template: "invoice", AttachmentRef: ref}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	requested := schemas.EmailRequested{OrderID: order, To: "zizou@example.com", Subject: invoice.Subject,
		Template: "invoice", AttachmentRef: &ref}
	at := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	msgID := "invoice-" + order + "@shopstream"
	sent := schemas.EmailSent{OrderID: order, To: "zizou@example.com", MessageID: msgID, SentAt: at}
	markSent := MarkSent{OrderID: order, MessageID: msgID, SentAt: at}
	given := func(evs ...schemas.Event) []schemas.Event { return evs }
	key := "k-0190f5a0-0000-7000-8000-000000000001"
	sealedRequested := schemas.EmailRequested{OrderID: order, To: "pii:v1:dG8", Subject: invoice.Subject, Template: "invoice", AttachmentRef: &ref, PIIKeyID: &key}
	pending := &Email{To: "zizou@example.com"}
	done := &Email{To: "zizou@example.com", MessageID: msgID, SentAt: at}

	rule := commandtest.Rule[Email, Command]{Decide: Decide, Evolve: Evolve, Idempotent: true}
	rule.Run(t, []commandtest.Case[Email, Command]{
		// Request: the billing processor asks for the invoice email.
		{Name: "request with the invoice attached", When: invoice, Then: given(requested), State: pending},
		{Name: "request without attachment", When: with(invoice, func(r *Request) { r.AttachmentRef = "" }),
			Then:  given(schemas.EmailRequested{OrderID: order, To: "zizou@example.com", Subject: invoice.Subject, Template: "invoice"}),
			State: pending},
		{Name: "request again: one email per order", Given: given(requested), When: invoice, State: pending},
		{Name: "request again to another address: the first request stands", Given: given(requested),
			When: with(invoice, func(r *Request) { r.To = "other@example.com" }), State: pending},
		{Name: "request after sent: nothing is sent twice", Given: given(requested, sent), When: invoice, State: done},
		{Name: "request again, invalid: the first request stands", Given: given(requested),
			When: with(invoice, func(r *Request) { r.To = "" }), State: pending},
		{Name: "request to nobody", When: with(invoice, func(r *Request) { r.To = "" }), Err: command.ErrInvalid, Field: "to"},

		// MarkSent: the sender records that the relay accepted the email.
		{Name: "mark sent: to the requested address", Given: given(requested), When: markSent, Then: given(sent), State: done},
		{Name: "mark sent at a local time: recorded in UTC", Given: given(requested),
			When: MarkSent{OrderID: order, MessageID: msgID, SentAt: at.In(time.FixedZone("CET", 3600))}, Then: given(sent), State: done},
		{Name: "mark sent again: recorded once", Given: given(requested, sent), When: markSent, State: done},
		{Name: "mark sent again with another message id and time: the first stands", Given: given(requested, sent),
			When: MarkSent{OrderID: order, MessageID: "other@shopstream", SentAt: at.Add(time.Minute)}, State: done},
		// Without a message id the email would not count as sent, and a
		// second MarkSent would record a second EmailSent: two invoice
		// emails for I3 where it counts EmailSent events.
		{Name: "mark sent without a message id", Given: given(requested), When: MarkSent{OrderID: order, SentAt: at},
			Err: command.ErrInvalid, Field: "message_id", State: pending},
		{Name: "mark sent again without a message id: the first stands", Given: given(requested, sent),
			When: MarkSent{OrderID: order, SentAt: at}, State: done},
		// No refusal: the sender marks only emails it found requested, and
		// it retries a command error, sending again each time, so an
		// ErrNotFound here would be worse than the record.
		{Name: "mark sent, never requested: recorded without an address", When: markSent,
			Then:  given(schemas.EmailSent{OrderID: order, MessageID: msgID, SentAt: at}),
			State: &Email{MessageID: msgID, SentAt: at}},

		{Name: "unknown command", Given: given(requested), When: bogus{}, Err: command.ErrInvalid, Field: "command"},

		// A sealed address (the customer's key, package pii) travels
		// with its key id, from the request to the sent record.
		{Name: "request to a sealed address", When: with(invoice, func(r *Request) { r.To, r.PIIKeyID = "pii:v1:dG8", key }),
			Then:  given(sealedRequested),
			State: &Email{To: "pii:v1:dG8", PIIKeyID: key}},
		{Name: "mark sent: the sealed address and its key", Given: given(sealedRequested), When: markSent,
			Then:  given(schemas.EmailSent{OrderID: order, To: "pii:v1:dG8", MessageID: msgID, SentAt: at, PIIKeyID: &key}),
			State: &Email{To: "pii:v1:dG8", PIIKeyID: key, MessageID: msgID, SentAt: at}},
	})
}
