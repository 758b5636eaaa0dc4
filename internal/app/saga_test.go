package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitOrder polls GET /orders/{id} until check passes.
func (s *shop) waitOrder(id string, timeout time.Duration, check func(map[string]any) bool) map[string]any {
	s.t.Helper()
	var last map[string]any
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		code, _, b := s.do(http.MethodGet, "/orders/"+id, "", "")
		if code == http.StatusOK {
			last = decodeBody(s.t, b)
			if check(last) {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("order %s never passed the check; last seen %v", id, last)
	return nil
}

func (s *shop) order(customer, method, product string, quantity int) (int, map[string]any) {
	s.t.Helper()
	return s.post("/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": %q, "items": [{"product_id": %q, "quantity": %d}]}`,
		customer, method, product, quantity))
}

// A card order and a SEPA order go placed → stock_reserved → paid →
// confirmed, and get their invoice.
func TestSagaConfirmsCardAndSepaOrders(t *testing.T) {
	s := startShop(t, t.TempDir())
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 5)
	for _, method := range []string{"card", "sepa"} {
		code, placed := s.order(customer, method, product, 2)
		if code != http.StatusAccepted {
			t.Fatalf("%s order: %d %v", method, code, placed)
		}
		o := s.waitOrder(placed["id"].(string), 20*time.Second, func(o map[string]any) bool {
			inv, _ := o["invoice"].(map[string]any)
			return o["status"] == "confirmed" && inv != nil && inv["issued_at"] != nil
		})
		history := fmt.Sprint(o["history"])
		for _, st := range []string{"placed", "confirmed"} {
			if !strings.Contains(history, st) {
				t.Errorf("%s order history %s lacks %s", method, history, st)
			}
		}
		if p := o["payment"].(map[string]any); p["status"] != "succeeded" || p["method"] != method || p["reference"] == "" {
			t.Errorf("%s payment %v", method, p)
		}
		t.Logf("%s order: %v", method, o)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 1 {
		t.Fatalf("available %d (%v), want 5 - 2 - 2 = 1", available, err)
	}
}

// 200 parallel one-unit orders against a stock of 20: exactly 20 confirmed,
// every other one refused at once (409 sold_out) or cancelled
// out_of_stock, and the stock ends at 0, never below.
func TestTwoHundredOrdersAgainstTwentyUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := startShop(t, t.TempDir())
	pool := s.pool()
	product := s.product(pool, 20)
	customers := make([]string, 10)
	for i := range customers {
		customers[i] = s.customer()
	}
	var mu sync.Mutex
	accepted, answers := []string{}, map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			code, body := s.order(customers[i%len(customers)], "card", product, 1)
			for shed := 0; code == http.StatusTooManyRequests; shed++ { // as a client does: retry after a pause
				mu.Lock()
				answers[code]++
				mu.Unlock()
				time.Sleep(time.Duration(10+shed*10) * time.Millisecond)
				code, body = s.order(customers[i%len(customers)], "card", product, 1)
			}
			mu.Lock()
			defer mu.Unlock()
			answers[code]++
			if code == http.StatusAccepted {
				accepted = append(accepted, body["id"].(string))
			}
		})
	}
	wg.Wait()
	t.Logf("answers to 200 orders: %v", answers)
	if answers[http.StatusAccepted]+answers[http.StatusConflict] != 200 {
		t.Fatalf("answers %v: want 202 or 409 for each, after any 429", answers)
	}
	status := map[string]int{}
	for _, id := range accepted {
		o := s.waitOrder(id, 60*time.Second, func(o map[string]any) bool {
			return o["status"] == "confirmed" || o["status"] == "cancelled"
		})
		key := fmt.Sprint(o["status"])
		if r, ok := o["cancel_reason"].(string); ok {
			key += " " + r
		}
		status[key]++
	}
	t.Logf("accepted orders ended: %v", status)
	if status["confirmed"] != 20 || status["confirmed"]+status["cancelled out_of_stock"] != len(accepted) {
		t.Fatalf("ends %v: want 20 confirmed and the rest cancelled out_of_stock", status)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 0 {
		t.Fatalf("available %d (%v), want 0", available, err)
	}
}
