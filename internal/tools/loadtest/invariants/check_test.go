package invariants_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/edge/auth"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/tools/loadtest/invariants"
	"shopstream/internal/tools/loadtest/report"
)

// shop is the whole shop on embedded infrastructure, as `shop dev` runs it.
type shop struct {
	t     *testing.T
	base  string
	ends  devstack.Endpoints
	dir   string
	stock func(productID string) int64 // the inventory's available units
	// client acts as staff, who may act for any customer.
	client   *http.Client
	staffKey string
}

func startShop(t *testing.T) *shop {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ds, err := devshop.Start(start, devstack.Config{Dir: dir, Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ds.Stop(context.Background()); err != nil {
			t.Errorf("stop the shop: %v", err)
		}
	})
	e := ds.Stack.Endpoints
	s := &shop{t: t, ends: e, dir: dir, base: ds.URL, client: auth.StaffClient(ds.Stack.Secrets.StaffKey, nil), staffKey: ds.Stack.Secrets.StaffKey}
	ctx := context.Background()
	pool, err := pgdb.Connect(ctx, e.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.stock = func(id string) int64 {
		var n int64 = -1
		_ = pool.QueryRow(ctx, `SELECT available FROM inventory.stock WHERE id = $1`, id).Scan(&n)
		return n
	}
	return s
}

// send sends a request and decodes its JSON answer.
func (s *shop) send(method, path, body string) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// accept posts a command that must be accepted and returns the id of its answer.
func (s *shop) accept(path, body string) string {
	s.t.Helper()
	code, m := s.send(http.MethodPost, path, body)
	if code/100 != 2 {
		s.t.Fatalf("POST %s %s: %d %v", path, body, code, m)
	}
	id, _ := m["id"].(string)
	return id
}

// product registers a product and waits until the inventory holds its units.
func (s *shop) product(units int) string {
	s.t.Helper()
	id := s.accept("/products", fmt.Sprintf(`{"title": "Maillot", "price_cents": 2500, "quantity": %d}`, units))
	for deadline := time.Now().Add(10 * time.Second); s.stock(id) != int64(units); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatalf("inventory never received product %s", id)
		}
	}
	return id
}

// waitTerminal waits until an order is confirmed and emailed, or cancelled.
func (s *shop) waitTerminal(id string) {
	s.t.Helper()
	var last map[string]any
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var code int
		code, last = s.send(http.MethodGet, "/orders/"+id, "")
		inv, _ := last["invoice"].(map[string]any)
		if code == http.StatusOK && (last["status"] == "cancelled" || last["status"] == "confirmed" && inv != nil && inv["emailed_at"] != nil) {
			return
		}
	}
	s.t.Fatalf("order %s not terminal after 20 s: %v", id, last)
}

func (s *shop) sources() invariants.Sources {
	return invariants.Sources{
		HTTP: s.base, StaffKey: s.staffKey, Brokers: s.ends.Brokers, RegistryURL: s.ends.RegistryURL, MongoURI: s.ends.MongoURI, MongoDB: "shop",
		CardPSPURL: s.ends.CardPSPURL, SepaBankURL: s.ends.SepaBankURL, MailDir: filepath.Join(s.dir, "mail"),
		Logger: slog.New(slog.NewTextHandler(s.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func logInvariants(t *testing.T, invs []report.Invariant) {
	t.Helper()
	for _, inv := range invs {
		t.Logf("%s %-5v checked %3d: %s %q", inv.ID, inv.Holds, inv.Checked, inv.Detail, inv.Violations)
	}
}

func named(inv report.Invariant, s string) bool {
	for _, v := range inv.Violations {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// A small shop — customers, products, a review, a cart add, card and SEPA
// orders of one and two lines — passes all six checks; then an order that
// was never placed, a second charge of an order at the card PSP and a
// second copy of an invoice email fail I1 and I6, I2 and I3, naming the
// orders.
func TestCheckOnARealShop(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the whole shop on embedded infrastructure")
	}
	s := startShop(t)
	var acc invariants.Accepted
	for range 2 {
		acc.Customers = append(acc.Customers, s.accept("/customers", fmt.Sprintf(`{"email": "%s@example.org", "name": "Fan", "password": "a password for the tests"}`, uuid.NewString())))
	}
	pA, pB := s.product(10), s.product(3)
	acc.Products = []string{pA, pB}
	acc.Reviews = []string{s.accept("/products/"+pA+"/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": 5}`, acc.Customers[0]))}
	s.accept("/carts/items", fmt.Sprintf(`{"customer_id": %q, "product_id": %q, "quantity": 1}`, acc.Customers[1], pB))
	acc.CartAdds = map[[2]string]int{{acc.Customers[1], pB}: 1}
	for i, o := range []struct{ method, items string }{
		{"card", fmt.Sprintf(`{"product_id": %q, "quantity": 2}`, pA)},
		{"sepa", fmt.Sprintf(`{"product_id": %q, "quantity": 1}, {"product_id": %q, "quantity": 1}`, pA, pB)},
		{"card", fmt.Sprintf(`{"product_id": %q, "quantity": 2}`, pB)},
		{"sepa", fmt.Sprintf(`{"product_id": %q, "quantity": 3}`, pA)},
	} {
		acc.Orders = append(acc.Orders, s.accept("/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": %q, "items": [%s]}`,
			acc.Customers[i%2], o.method, o.items)))
	}
	for _, id := range acc.Orders {
		s.waitTerminal(id)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	invs := invariants.Check(ctx, s.sources(), acc)
	t.Logf("checked in %s", time.Since(began).Round(time.Millisecond))
	logInvariants(t, invs)
	if len(invs) != 6 {
		t.Fatalf("%d invariants, want 6", len(invs))
	}
	for i, inv := range invs {
		if want := fmt.Sprintf("I%d", i+1); inv.ID != want || !inv.Holds {
			t.Errorf("invariant %d: %s holds=%v, want %s holding: %s %q", i, inv.ID, inv.Holds, want, inv.Detail, inv.Violations)
		}
	}
	// What each counted: 2 customers + 2 products + 1 review + 4 orders + 1 cart add;
	// 4 orders charged and emailed; 4 orders read.
	for i, want := range map[int]int{0: 10, 1: 4, 2: 4, 5: 4} {
		if invs[i].Checked != want {
			t.Errorf("%s checked %d, want %d", invs[i].ID, invs[i].Checked, want)
		}
	}
	if invs[3].Checked < 2+4 || !strings.Contains(invs[3].Detail, "orders: 4 documents, 0 differences; products: 2 documents, 0 differences") ||
		!strings.Contains(invs[3].Detail, "listing: ") {
		t.Errorf("I4 %d: %s", invs[3].Checked, invs[3].Detail)
	}

	// Break what can be broken from outside.
	ghost := uuid.NewString() // accepted, never placed
	broken := acc
	broken.Orders = append(append([]string{}, acc.Orders...), ghost)
	charged := acc.Orders[0] // charged again at the card PSP, under another key
	body := fmt.Sprintf(`{"order_id": %q, "amount_cents": 5000, "currency": "EUR", "method": "card"}`, charged)
	req, _ := http.NewRequest(http.MethodPost, s.ends.CardPSPURL+"/charges", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "a-second-charge")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("second charge: %v %v", resp, err)
	}
	mailDir := filepath.Join(s.dir, "mail")
	emls, _ := filepath.Glob(filepath.Join(mailDir, "*.eml"))
	if len(emls) != 4 {
		t.Fatalf("%d emails in %s, want 4", len(emls), mailDir)
	}
	raw, err := os.ReadFile(emls[0])
	if err != nil {
		t.Fatal(err)
	}
	copyName := time.Now().UTC().Format("20060102T150405.000000Z") + "-copy.eml"
	if err := os.WriteFile(filepath.Join(mailDir, copyName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	twice := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "Message-ID: <invoice-"); ok {
			twice, _, _ = strings.Cut(id, "@")
		}
	}

	invs = invariants.Check(ctx, s.sources(), broken)
	logInvariants(t, invs)
	for i, c := range []struct {
		holds bool
		name  string
	}{{false, "order " + ghost + ": no OrderPlaced"}, {false, "order " + charged + ": charged 2 times"},
		{false, "order " + twice + ": 2 invoice emails"}, {true, ""}, {true, ""}, {false, "order " + ghost + ": not in the orders read model"}} {
		if invs[i].Holds != c.holds || c.name != "" && !named(invs[i], c.name) {
			t.Errorf("%s holds=%v (want %v), violations %q, want one naming %q", invs[i].ID, invs[i].Holds, c.holds, invs[i].Violations, c.name)
		}
	}
}

// With nothing reachable, every check fails and says why; none passes.
func TestCheckWithNothingReachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	src := invariants.Sources{HTTP: "http://127.0.0.1:1", Brokers: []string{"127.0.0.1:1"}, RegistryURL: "http://127.0.0.1:1",
		MongoURI: "mongodb://127.0.0.1:1", MailDir: filepath.Join(t.TempDir(), "absent")}
	invs := invariants.Check(ctx, src, invariants.Accepted{Products: []string{uuid.NewString()}, Orders: []string{uuid.NewString()}})
	logInvariants(t, invs)
	if len(invs) != 6 {
		t.Fatalf("%d invariants, want 6", len(invs))
	}
	for i, inv := range invs {
		if inv.ID != fmt.Sprintf("I%d", i+1) || inv.Holds || inv.Detail == "" {
			t.Errorf("%s holds=%v: %q", inv.ID, inv.Holds, inv.Detail)
		}
	}
}
