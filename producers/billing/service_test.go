package billing

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/testbackend"
)

// Issue keeps its promise that issuing an order's invoice again changes
// nothing: the first invoice, its number and its PDF stand, and the second
// call succeeds. A second Issue comes from a redelivered OrderConfirmed
// that passed the processor's Invoice check while the first was
// committing.
func TestIssueAgainChangesNothing(t *testing.T) {
	ctx := context.Background()
	pool, serde := startStore(t)
	svc := NewService(pool, serde)
	issue := func(number string, pdf []byte) error {
		return svc.Issue(ctx, command.Meta{}, Issue{OrderID: order, Number: number, CustomerID: customer, TotalCents: 4200}, pdf)
	}
	first := []byte("%PDF-1.4 INV-2026-000042")
	if err := issue("INV-2026-000042", first); err != nil {
		t.Fatalf("issue: %v", err)
	}
	if err := issue("INV-2026-000043", []byte("%PDF-1.4 INV-2026-000043")); err != nil {
		t.Fatalf("issue again: %v", err)
	}
	if inv, issued, err := svc.Invoice(ctx, order); err != nil || !issued || inv.Number != "INV-2026-000042" {
		t.Fatalf("Invoice = %+v, %v, %v; want the first, INV-2026-000042", inv, issued, err)
	}
	pdf, err := svc.Document(ctx, DocumentRef(order))
	if err != nil || !bytes.Equal(pdf, first) {
		t.Fatalf("document %q, %v; want the first one, %q", pdf, err, first)
	}
	if n, err := outbox.Pending(ctx, pool); err != nil || n != 1 {
		t.Fatalf("%d events pending in the outbox, %v; want one InvoiceIssued", n, err)
	}
}

// startStore starts PostgreSQL with the billing schema, and a registry for
// the events' serde.
func startStore(t *testing.T) (*pgxpool.Pool, *eventlog.Serde) {
	t.Helper()
	ctx := context.Background()
	url := testbackend.PostgresURL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	migrations := append(append(outbox.Migrations(), idempotency.Migrations()...), Migrations()...)
	if _, err := pgdb.Migrate(ctx, pool, migrations); err != nil {
		t.Fatal(err)
	}
	serde, _ := eventlogtest.Serde(t)
	if err := serde.RegisterAll(ctx); err != nil {
		t.Fatal(err)
	}
	return pool, serde
}
