package billing

import (
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/command/commandtest"
	"shopstream/schemas"
)

const (
	order    = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	customer = "9d3b5a7c-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
)

// TestDecide is the invoice half of I3: one invoice per order, so one
// invoice email, even when a redelivered OrderConfirmed allocates a new
// number before it reaches Decide.
func TestDecide(t *testing.T) {
	issue := Issue{OrderID: order, Number: "INV-2026-000042", CustomerID: customer, TotalCents: 4200, DocumentRef: DocumentRef(order)}
	with := func(c Issue, f func(*Issue)) Issue { f(&c); return c }
	issued := schemas.InvoiceIssued{OrderID: order, InvoiceNumber: "INV-2026-000042", CustomerID: customer,
		TotalCents: 4200, DocumentRef: "billing/documents/" + order}
	given := func(evs ...schemas.Event) []schemas.Event { return evs }
	first := &Invoice{Number: "INV-2026-000042", CustomerID: customer, TotalCents: 4200}

	rule := commandtest.Rule[Invoice, Issue]{Decide: Decide, Evolve: Evolve, Idempotent: true}
	rule.Run(t, []commandtest.Case[Invoice, Issue]{
		{Name: "issue", When: issue, Then: given(issued), State: first},
		{Name: "issue a free order", When: with(issue, func(c *Issue) { c.TotalCents = 0 }),
			Then:  given(schemas.InvoiceIssued{OrderID: order, InvoiceNumber: "INV-2026-000042", CustomerID: customer, DocumentRef: issued.DocumentRef}),
			State: &Invoice{Number: "INV-2026-000042", CustomerID: customer}},
		{Name: "issue again: one invoice per order", Given: given(issued), When: issue, State: first},
		{Name: "issue again with a new number: the first invoice stands", Given: given(issued),
			When: with(issue, func(c *Issue) { c.Number, c.TotalCents = "INV-2026-000043", 9900 }), State: first},
		{Name: "issue again, invalid: the first invoice stands", Given: given(issued),
			When: with(issue, func(c *Issue) { c.Number = "" }), State: first},
		{Name: "issue without a number", When: with(issue, func(c *Issue) { c.Number = "" }), Err: command.ErrInvalid, Field: "invoice"},
		{Name: "issue a negative total", When: with(issue, func(c *Issue) { c.TotalCents = -1 }), Err: command.ErrInvalid, Field: "invoice"},
	})
}
