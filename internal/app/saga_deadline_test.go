package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
)

// With the card PSP (4–12 s) slower than --payment-timeout (1 s), the saga's deadline
// cancels the order (payment_timeout) and gives its units back; the charge
// the PSP makes anyway, later, is refunded: nothing stays charged.
func TestSagaPaymentTimeoutCancelsAndRefundsTheLateCharge(t *testing.T) {
	s := startShopOn(t, devstack.Config{Dir: t.TempDir(), PSPLatency: 8 * time.Second},
		func(cfg *app.Config) { cfg.PaymentTimeout = time.Second })
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 5)
	code, placed := s.order(customer, "card", product, 2)
	if code != http.StatusAccepted {
		t.Fatalf("order: %d %v", code, placed)
	}
	id := placed["id"].(string)
	o := s.waitOrder(id, 30*time.Second, func(o map[string]any) bool { return o["status"] == "cancelled" })
	if o["cancel_reason"] != "payment_timeout" {
		t.Fatalf("order cancelled for %v, want payment_timeout: %v", o["cancel_reason"], o)
	}

	// The PSP charges after its latency; the saga refunds that charge.
	deadline := time.Now().Add(30 * time.Second)
	for {
		charged, refunded := charges(t, s.stack.Endpoints.CardPSPURL, id)
		if charged == 1 && refunded == 1 {
			break
		}
		if charged > 1 || time.Now().After(deadline) {
			t.Fatalf("order %s: %d charges, %d refunded; want one charge, refunded", id, charged, refunded)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 5 {
		t.Fatalf("available %d (%v), want the 5 units back", available, err)
	}
	var status string
	var fired bool
	if err := pool.QueryRow(context.Background(), `SELECT o.state->>'status', d.fired_at IS NOT NULL FROM saga.orders o
		JOIN saga.deadlines d ON d.order_id = o.id WHERE o.id = $1`, id).Scan(&status, &fired); err != nil || status != "cancelled" || !fired {
		t.Fatalf("saga state %s, deadline fired %v (%v)", status, fired, err)
	}
	time.Sleep(500 * time.Millisecond)
	if o := s.waitOrder(id, time.Second, func(map[string]any) bool { return true }); o["status"] != "cancelled" {
		t.Fatalf("order ended %v", o["status"])
	}
}

// charges counts an order's succeeded charges at a PSP simulator, and how
// many of them were refunded.
func charges(t *testing.T, pspURL, orderID string) (charged, refunded int) {
	t.Helper()
	resp, err := http.Get(pspURL + "/charges?order_id=" + orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Charges []struct {
			Status     string     `json:"status"`
			RefundedAt *time.Time `json:"refunded_at"`
		} `json:"charges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Charges {
		if c.Status == "succeeded" {
			charged++
			if c.RefundedAt != nil {
				refunded++
			}
		}
	}
	return charged, refunded
}

// GET /orders/{id} shows the saga's pending deadline while the payment has
// no outcome (PaymentRequested v2's expires_at, folded by the orders
// projection), and no deadline once it has one.
func TestOrderShowsItsPendingPaymentDeadline(t *testing.T) {
	s := startShopOn(t, devstack.Config{Dir: t.TempDir(), PSPLatency: 4 * time.Second},
		func(cfg *app.Config) { cfg.PaymentTimeout = time.Hour })
	customer, product := s.customer(), s.product(s.pool(), 5)
	code, placed := s.order(customer, "card", product, 1)
	if code != http.StatusAccepted {
		t.Fatalf("order: %d %v", code, placed)
	}
	id := placed["id"].(string)
	deadline := func(o map[string]any) (time.Time, bool) {
		p, _ := o["payment"].(map[string]any)
		s, ok := p["deadline"].(string)
		at, err := time.Parse(time.RFC3339Nano, s)
		return at, ok && err == nil
	}
	o := s.waitOrder(id, 30*time.Second, func(o map[string]any) bool { _, ok := deadline(o); return ok })
	at, _ := deadline(o)
	placedAt, err := time.Parse(time.RFC3339Nano, o["placed_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := at.Sub(placedAt); d < time.Hour || d > time.Hour+30*time.Second {
		t.Fatalf("payment deadline %v is %v after placed_at %v; want --payment-timeout (1h) after the saga took the order", at, d, placedAt)
	}
	t.Logf("order %s paying: payment %v", id, o["payment"])
	o = s.waitOrder(id, 30*time.Second, func(o map[string]any) bool { return o["status"] == "confirmed" })
	if _, ok := deadline(o); ok {
		t.Fatalf("confirmed order still shows a payment deadline: %v", o["payment"])
	}
}
