package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/app"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/apiclient"
	"shopstream/producers/inventory"
	"shopstream/schemas"
)

func (s *shop) pool() *pgxpool.Pool {
	s.t.Helper()
	pool, err := pgdb.Connect(context.Background(), s.stack.Endpoints.PostgresURL)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	return pool
}

// product registers a product with that many units and waits until the
// inventory has received them.
func (s *shop) product(pool *pgxpool.Pool, quantity int) string {
	s.t.Helper()
	code, body := s.post("/products", fmt.Sprintf(`{"title": "Maillot", "price_cents": 2500, "quantity": %d}`, quantity))
	if code != http.StatusCreated {
		s.t.Fatalf("POST /products: %d %v", code, body)
	}
	id := body["id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int64
		err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, id).Scan(&n)
		if err == nil && n == int64(quantity) {
			return id
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("inventory never received product %s (%v, %d)", id, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *shop) customer() string {
	s.t.Helper()
	code, body := s.post("/customers", fmt.Sprintf(`{"email": "%s@example.org", "name": "Fan", "password": %q}`, uuid.NewString(), apiclient.Password))
	if code != http.StatusCreated {
		s.t.Fatalf("POST /customers: %d %v", code, body)
	}
	return body["id"].(string)
}

func decodeBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

// The same Idempotency-Key and request replay the first answer and do
// nothing; another request under the key is a 422; twenty concurrent
// retries of one request have one effect.
func TestIdempotencyKey(t *testing.T) {
	s := startShop(t, t.TempDir())
	const body = `{"title": "Ballon", "price_cents": 1999, "quantity": 5}`
	code, h1, b1 := s.do(http.MethodPost, "/products", "application/json", body, "Idempotency-Key", "k-1")
	if code != http.StatusCreated || h1.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s %v", code, b1, h1)
	}
	first := decodeBody(t, b1)["id"]
	// Same request, spelled differently: same JSON, other spacing and order.
	code, h2, b2 := s.do(http.MethodPost, "/products", "application/json",
		`{ "quantity":5, "price_cents":1999, "title":"Ballon" }`, "Idempotency-Key", "k-1")
	if code != http.StatusCreated || h2.Get("Idempotent-Replayed") != "true" || decodeBody(t, b2)["id"] != first ||
		h2.Get("Location") != h1.Get("Location") {
		t.Fatalf("replay: %d %s %v, want 201 with id %v", code, b2, h2, first)
	}
	code, h3, b3 := s.do(http.MethodPost, "/products", "application/json",
		`{"title": "Ballon", "price_cents": 2999, "quantity": 5}`, "Idempotency-Key", "k-1")
	if p := decodeBody(t, b3); code != http.StatusUnprocessableEntity || h3.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(fmt.Sprint(p["errors"]), "Idempotency-Key") {
		t.Fatalf("other body, same key: %d %s", code, b3)
	}
	if code, _, b := s.do(http.MethodPost, "/products", "application/json", body, "Idempotency-Key", strings.Repeat("k", 256)); code != http.StatusBadRequest {
		t.Fatalf("256-character key: %d %s", code, b)
	}

	// Twenty concurrent requests with one new key: one effect, one id.
	ids := make(chan string, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			code, _, b := s.do(http.MethodPost, "/products", "application/json", body, "Idempotency-Key", "k-2")
			if code != http.StatusCreated {
				t.Errorf("concurrent: %d %s", code, b)
				ids <- ""
				return
			}
			ids <- decodeBody(t, b)["id"].(string)
		})
	}
	wg.Wait()
	close(ids)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 1 {
		t.Fatalf("20 concurrent requests with one key answered %d ids: %v", len(distinct), distinct)
	}
	s.waitRecords(schemas.TopicProducts, 2) // k-1 once, k-2 once
}

// Carts hold items until checkout; an order from the cart empties it in the
// same transaction; sold-out and short products are refused at once.
func TestCartsAndOrders(t *testing.T) {
	s := startShop(t, t.TempDir())
	pool := s.pool()
	customer, shirt, soldOut := s.customer(), s.product(pool, 10), s.product(pool, 0)
	item := func(product string, q int) string {
		return fmt.Sprintf(`{"product_id": %q, "customer_id": %q, "quantity": %d}`, product, customer, q)
	}
	for _, step := range []struct{ add, held int }{{1, 1}, {2, 3}} {
		code, _, b := s.do(http.MethodPost, "/carts/items", "application/json", item(shirt, step.add))
		want := fmt.Sprintf(`{"customer_id":%q,"items":[{"product_id":%q,"quantity":%d}]}`, customer, shirt, step.held)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != want {
			t.Fatalf("cart after adding %d: %d %s, want %s", step.add, code, b, want)
		}
	}
	code, _, b := s.do(http.MethodDelete, "/carts/"+customer+"/items/"+shirt, "", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"items":[]`) {
		t.Fatalf("remove: %d %s", code, b)
	}
	if code, _, b := s.do(http.MethodDelete, "/carts/"+customer+"/items/"+shirt, "", ""); code != http.StatusNotFound {
		t.Fatalf("remove twice: %d %s", code, b)
	}
	order := func(items string) (int, http.Header, map[string]any) {
		body := fmt.Sprintf(`{"customer_id": %q, "payment_method": "card"%s}`, customer, items)
		code, h, b := s.do(http.MethodPost, "/orders", "application/json", body)
		return code, h, decodeBody(t, b)
	}
	if code, _, p := order(""); code != http.StatusUnprocessableEntity {
		t.Fatalf("checkout of an empty cart: %d %v", code, p)
	}
	if code, _, b := s.do(http.MethodPost, "/carts/items", "application/json", item(shirt, 2)); code != http.StatusOK {
		t.Fatalf("add to cart: %d %s", code, b)
	}
	code, h, placed := order("")
	if code != http.StatusAccepted || placed["status"] != "placed" || h.Get("Location") != "/orders/"+fmt.Sprint(placed["id"]) {
		t.Fatalf("checkout: %d %v %v", code, placed, h)
	}
	if code, _, p := order(""); code != http.StatusUnprocessableEntity {
		t.Fatalf("the cart was not emptied by checkout: %d %v", code, p)
	}
	if code, _, p := order(fmt.Sprintf(`, "items": [{"product_id": %q, "quantity": 1}]`, shirt)); code != http.StatusAccepted {
		t.Fatalf("order with items: %d %v", code, p)
	}
	code, _, p := order(fmt.Sprintf(`, "items": [{"product_id": %q, "quantity": 1}]`, soldOut))
	if code != http.StatusConflict || p["type"] != "https://shopstream.dev/problems/sold_out" || p["product_id"] != soldOut {
		t.Fatalf("sold-out product: %d %v", code, p)
	}
	code, _, p = order(fmt.Sprintf(`, "items": [{"product_id": %q, "quantity": 11}]`, shirt))
	if code != http.StatusConflict || p["type"] != "https://shopstream.dev/problems/insufficient-stock" {
		t.Fatalf("more than the stock: %d %v", code, p)
	}
	unknown := uuid.NewString()
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"unknown customer":      {fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, unknown, shirt), 404},
		"unknown product":       {fmt.Sprintf(`{"customer_id": %q, "payment_method": "sepa", "items": [{"product_id": %q, "quantity": 1}]}`, customer, unknown), 404},
		"bad method":            {fmt.Sprintf(`{"customer_id": %q, "payment_method": "cash", "items": [{"product_id": %q, "quantity": 1}]}`, customer, shirt), 422},
		"zero quantity":         {fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 0}]}`, customer, shirt), 422},
		"missing quantity":      {fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q}]}`, customer, shirt), 422},
		"twice a product":       {fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}, {"product_id": %q, "quantity": 1}]}`, customer, shirt, shirt), 422},
		"cart, unknown product": {fmt.Sprintf(`{"customer_id": %q, "product_id": %q, "quantity": 1}`, customer, unknown), 404},
		"cart, 100 units":       {fmt.Sprintf(`{"customer_id": %q, "product_id": %q, "quantity": 100}`, customer, shirt), 422},
	} {
		path := "/orders"
		if strings.HasPrefix(name, "cart") {
			path = "/carts/items"
		}
		if code, h, b := s.do(http.MethodPost, path, "application/json", c.body); code != c.status || h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d problem", name, code, b, c.status)
		}
	}
	// Two orders reached the log, each priced by the catalogue; the cart's
	// history ends with its checkout.
	s.waitEvents(schemas.TopicOrders, schemas.OrderPlaced{}.EventType(), 2) // the saga writes there too
	s.waitRecords(schemas.TopicCarts, 5)                                    // add, add, remove, add, checkout
}

// With one command in flight allowed, a burst gets 429 problems with
// Retry-After, and every accepted command, and only those, reaches the log.
func TestLoadSheddingAnswers429AndLosesNothing(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) { c.MaxInFlight = 1 })
	codes := make(chan int, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			code, h, b := s.do(http.MethodPost, "/products", "application/json", fmt.Sprintf(`{"title": "T%d", "price_cents": 100, "quantity": 1}`, i))
			if code == http.StatusTooManyRequests && (h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json") {
				t.Errorf("429 without Retry-After or problem: %v %s", h, b)
			}
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	t.Logf("40 concurrent commands, 1 in flight allowed: %v", count)
	if count[http.StatusCreated]+count[http.StatusTooManyRequests] != 40 || count[http.StatusTooManyRequests] == 0 {
		t.Fatalf("answers %v: want only 201 and 429, with some 429", count)
	}
	s.waitRecords(schemas.TopicProducts, int64(count[http.StatusCreated]))
	// The relay deletes the rows once Kafka acknowledged them: a moment
	// after the records became readable.
	pool := s.pool()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := outbox.Pending(context.Background(), pool)
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox holds %d (%v)", n, err)
		}
	}
}

// 200 concurrent one-unit reservations against a stock of 20: exactly 20
// hold a unit, the rest are refused, the stock ends at 0, and the database
// itself refuses a negative stock.
func TestInventoryNeverOversells(t *testing.T) {
	s := startShop(t, t.TempDir())
	pool := s.pool()
	product := s.product(pool, 20)
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sr.NewClient(sr.URLs(s.stack.Endpoints.RegistryURL))
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.NewService(pool, eventlog.NewSerde(reg, cat))
	ctx := context.Background()
	var mu sync.Mutex
	outcome := map[string]int{}
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			order := uuid.NewString()
			var err error
			for { // what the saga's consumer does with a lost version race
				err = inv.Reserve(ctx, command.Meta{CorrelationID: order}, order, []inventory.Line{{ProductID: product, Quantity: 1}})
				if !errors.Is(err, command.ErrVersion) {
					break
				}
			}
			var short *command.Shortage
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcome["reserved"]++
			case errors.As(err, &short):
				outcome["refused"]++
			default:
				outcome[err.Error()]++
			}
		})
	}
	wg.Wait()
	t.Logf("200 reservations of 1 unit against 20: %v", outcome)
	if outcome["reserved"] != 20 || outcome["refused"] != 180 {
		t.Fatalf("outcomes %v, want 20 reserved and 180 refused", outcome)
	}
	available, err := inv.Available(ctx, []string{product})
	if err != nil || available[product] != 0 {
		t.Fatalf("available %v (%v), want 0", available, err)
	}
	// StockReceived, 20 StockReserved, ProductSoldOut, 180 StockReservationRejected.
	s.waitRecords(schemas.TopicStock, 1+20+1+180)
	_, err = pool.Exec(ctx, `UPDATE inventory.stock SET state = jsonb_set(state, '{available}', '-1') WHERE id = $1`, product)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "stock_available_not_negative" {
		t.Fatalf("a negative stock written behind the code's back: %v, want the CHECK to refuse it", err)
	}
	if code, _, b := s.do(http.MethodPost, "/orders", "application/json",
		fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, s.customer(), product)); code != http.StatusConflict || !strings.Contains(string(b), "sold_out") {
		t.Fatalf("order of the sold-out product: %d %s", code, b)
	}
}
