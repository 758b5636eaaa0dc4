package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/app"
	"shopstream/internal/platform/pgdb"
)

// With a database per context, the whole order path runs (a card order,
// a SEPA order, a cart checked out, idempotent retries, invoices
// emailed), and each context's database holds its own tables and
// nothing of another's: a cross-context query or transaction could not
// even be written, and each database's outbox drains.
func TestContextsOwnTheirDatabases(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) { c.DatabasePerContext = true })
	ctx := context.Background()
	cds, err := app.ContextDatabases(s.stack.Endpoints.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]*pgxpool.Pool{}
	for _, cd := range cds {
		p, err := pgdb.Connect(ctx, cd.URL)
		if err != nil {
			t.Fatalf("database of %s (%s): %v", cd.Context, cd.Database, err)
		}
		t.Cleanup(p.Close)
		pools[cd.Context] = p
	}

	customer, product := s.customer(), s.product(pools[app.CtxInventory], 10)
	var ids []string
	for _, method := range []string{"card", "sepa"} {
		code, placed := s.order(customer, method, product, 2)
		if code != http.StatusAccepted {
			t.Fatalf("%s order: %d %v", method, code, placed)
		}
		ids = append(ids, placed["id"].(string))
	}
	// A cart lives with the orders: checking it out is one transaction.
	if code, _, b := s.do(http.MethodPost, "/carts/items", "application/json",
		fmt.Sprintf(`{"product_id": %q, "customer_id": %q, "quantity": 1}`, product, customer)); code != http.StatusOK {
		t.Fatalf("add to cart: %d %s", code, b)
	}
	checkout := fmt.Sprintf(`{"customer_id": %q, "payment_method": "card"}`, customer)
	code, _, b := s.do(http.MethodPost, "/orders", "application/json", checkout, "Idempotency-Key", "checkout-1")
	if code != http.StatusAccepted {
		t.Fatalf("checkout: %d %s", code, b)
	}
	ids = append(ids, decodeBody(t, b)["id"].(string))
	// The key is looked up where the orders context recorded it.
	code, h, b2 := s.do(http.MethodPost, "/orders", "application/json", checkout, "Idempotency-Key", "checkout-1")
	if code != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" || decodeBody(t, b2)["id"] != ids[2] {
		t.Fatalf("checkout retried with its key: %d %s %v, want the first answer replayed", code, b2, h)
	}
	for _, id := range ids {
		s.waitOrder(id, 30*time.Second, func(o map[string]any) bool {
			inv, _ := o["invoice"].(map[string]any)
			return o["status"] == "confirmed" && inv != nil && inv["emailed_at"] != nil
		})
	}

	// What each context's database holds, and rows where the run wrote.
	own := map[string][]string{
		app.CtxCustomers: {"customers"}, app.CtxCatalog: {"catalog"}, app.CtxInventory: {"inventory"},
		app.CtxOrders: {"carts", "orders"}, app.CtxReviews: {"reviews"}, app.CtxPayments: {"payments"},
		app.CtxBilling: {"billing"}, app.CtxNotifications: {"notifications"}, app.CtxSaga: {"saga"},
	}
	written := map[string]string{
		app.CtxCustomers: "customers.customers", app.CtxCatalog: "catalog.products", app.CtxInventory: "inventory.stock",
		app.CtxOrders: "orders.orders", app.CtxPayments: "payments.payments", app.CtxBilling: "billing.invoices",
		app.CtxNotifications: "notifications.emails", app.CtxSaga: "saga.orders",
	}
	for _, cd := range cds {
		pool := pools[cd.Context]
		rows, err := pool.Query(ctx, `SELECT DISTINCT table_schema FROM information_schema.tables
			WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'public') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		var schemas []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			schemas = append(schemas, s)
		}
		rows.Close()
		want := slices.Sorted(slices.Values(append([]string{"idempotency", "outbox"}, own[cd.Context]...)))
		if !slices.Equal(schemas, want) {
			t.Errorf("database %s of %s holds schemas %v, want %v", cd.Database, cd.Context, schemas, want)
		}
		if table := written[cd.Context]; table != "" {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n == 0 {
				t.Errorf("%s in %s: %d rows (%v), want some", table, cd.Database, n, err)
			}
		}
		var pending int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox.records`).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if pending == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if pending != 0 {
			t.Errorf("outbox of %s: %d records never published", cd.Database, pending)
		}
	}
	var keys int
	if err := pools[app.CtxOrders].QueryRow(ctx, `SELECT count(*) FROM idempotency.keys WHERE key LIKE '%checkout-1'`).Scan(&keys); err != nil || keys != 1 {
		t.Errorf("idempotency key of the checkout in the orders database: %d (%v), want 1", keys, err)
	}
	var available int64
	if err := pools[app.CtxInventory].QueryRow(ctx, `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 5 {
		t.Errorf("available %d (%v), want 10 - 2 - 2 - 1 = 5", available, err)
	}
	names := make([]string, 0, len(cds))
	for _, cd := range cds {
		names = append(names, cd.Database)
	}
	t.Logf("%d databases, one per context: %s", len(cds), strings.Join(names, ", "))
}
