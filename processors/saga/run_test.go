package saga

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/uuid"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/producers/inventory"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
)

// The units and the payment are two transactions, one per context: a
// payment request the payments context refuses for good leaves no units
// held (the step fails permanently, as when one transaction rolled both
// back), and a request it takes leaves them held, once however often the
// step runs.
func TestReserveThenRequestInTheirOwnTransactions(t *testing.T) {
	url, _ := database(t, t.TempDir())
	pool := connect(t, url)
	ctx := context.Background()
	if _, err := pgdb.Migrate(ctx, pool, slices.Concat(outbox.Migrations(), idempotency.Migrations(), inventory.Migrations(), payments.Migrations())); err != nil {
		t.Fatal(err)
	}
	serde, _ := eventlogtest.Serde(t)
	if err := serde.RegisterAll(ctx); err != nil {
		t.Fatal(err)
	}
	inv, pay := inventory.NewService(pool, serde), payments.NewService(pool, serde)
	s := New(Deps{Own: pool, Inventory: inv, Payments: pay, Timeouts: Timeouts{Card: 1}, Logger: slog.New(slog.DiscardHandler)})
	product := uuid.NewString()
	if err := inv.Receive(ctx, command.Meta{}, inventory.ReceiveStock{ProductID: product, Quantity: 5, CatalogVersion: 1}); err != nil {
		t.Fatal(err)
	}
	available := func() int64 {
		t.Helper()
		a, err := inv.Available(ctx, []string{product})
		if err != nil {
			t.Fatal(err)
		}
		return a[product]
	}
	lines := []Line{{ProductID: product, Quantity: 2}}

	refused := Reserve{OrderID: uuid.NewString(), CustomerID: "c", Method: orders.Card, AmountCents: 0, Lines: lines}
	if _, err := s.run(ctx, command.Meta{}, refused); !errors.Is(err, command.ErrInvalid) {
		t.Fatalf("a payment of 0: %v, want ErrInvalid", err)
	}
	if got := available(); got != 5 {
		t.Fatalf("after a refused payment request %d units available, want 5: none held", got)
	}

	taken := Reserve{OrderID: uuid.NewString(), CustomerID: "c", Method: orders.Card, AmountCents: 500, Lines: lines}
	for range 2 { // a step run again (redelivery after a cut) holds nothing more
		if _, err := s.run(ctx, command.Meta{}, taken); err != nil {
			t.Fatal(err)
		}
	}
	if got := available(); got != 3 {
		t.Fatalf("after a taken payment request %d units available, want 3", got)
	}
	if p, found, err := pay.Payment(ctx, taken.OrderID); err != nil || !found || p.Status != payments.StatusRequested {
		t.Fatalf("payment %+v found %v (%v), want requested", p, found, err)
	}
}
