package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/apiclient"
	"shopstream/schemas"
)

// shop is a running stack plus every component, as `shop dev` runs them.
type shop struct {
	t     *testing.T
	base  string
	admin string // the admin listener: metrics, lag
	stack *devstack.Stack
	stop  func()
	// client acts as staff (the stack's API key) unless a request carries
	// credentials of its own: staff may act on any customer's behalf, so
	// the tests of other concerns name their customer_id as before. The
	// tests of who may do what (auth_test.go) act as customers.
	client *http.Client
}

// startShop runs the shop on a stack under dir; options change its config.
func startShop(t *testing.T, dir string, options ...func(*app.Config)) *shop {
	t.Helper()
	return startShopOn(t, devstack.Config{Dir: dir}, options...)
}

// startShopOn runs the shop on a stack configured by sc.
func startShopOn(t *testing.T, sc devstack.Config, options ...func(*app.Config)) *shop {
	t.Helper()
	if sc.Logger == nil {
		sc.Logger = slog.New(slog.NewTextHandler(testLogOutput(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ds, err := devshop.Start(ctx, sc, func(cfg *app.Config) {
		for _, o := range options {
			o(cfg)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &shop{t: t, stack: ds.Stack, base: ds.URL, admin: ds.Admin, client: apiclient.Staff(ds.Stack.Secrets.StaffKey)}
	s.stop = func() {
		if err := ds.Stop(context.Background()); err != nil {
			t.Errorf("stop the shop: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// do sends a request; headers are name, value pairs.
func (s *shop) do(method, path, contentType, body string, headers ...string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (s *shop) post(path, body string) (int, map[string]any) {
	s.t.Helper()
	code, _, b := s.do(http.MethodPost, path, "application/json", body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return code, m
}

// waitProduct polls GET /products/{id} until check passes; it returns the
// product and how long it took to become visible.
func (s *shop) waitProduct(id string, check func(map[string]any) bool) (map[string]any, time.Duration) {
	s.t.Helper()
	began := time.Now()
	for time.Since(began) < 15*time.Second {
		code, _, b := s.do(http.MethodGet, "/products/"+id, "", "")
		if code == http.StatusOK {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				s.t.Fatal(err)
			}
			if check(m) {
				return m, time.Since(began)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("product %s did not reach the expected state in 15 s", id)
	return nil, 0
}

const seedProduct = `{"title": "Maillot de l'OM 93", "quantity": 1, "photo": "http://autresite.com/maillot.jpg", "price_cents": 8999}`

func TestFirstSliceEndToEndAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, dir)

	code, _, _ := s.do(http.MethodGet, "/healthz", "", "")
	if code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	code, created := s.post("/products", seedProduct)
	if code != http.StatusCreated {
		t.Fatalf("POST /products: %d %v", code, created)
	}
	id := created["id"].(string)
	_, took := s.waitProduct(id, func(m map[string]any) bool { return m["title"] == "Maillot de l'OM 93" })
	t.Logf("product readable %v after its 201", took)

	for _, r := range []string{
		`{"customer_id": "368c748f-d636-4acb-a632-d5257ffb0764", "rating": 5, "comment": "Allez l'OM"}`,
		`{"customer_id": "e4dc6426-eb0f-42aa-9f77-f2f6f9e198f1", "rating": 2}`,
	} {
		if code, body := s.post("/products/"+id+"/reviews", r); code != http.StatusCreated {
			t.Fatalf("POST review: %d %v", code, body)
		}
	}
	p, took := s.waitProduct(id, func(m map[string]any) bool { return m["rating"].(map[string]any)["count"] == 2.0 })
	t.Logf("second review visible %v after its 201", took)
	rating := p["rating"].(map[string]any)
	if rating["average"] != 3.5 || len(p["reviews"].([]any)) != 2 || p["price_cents"] != 8999.0 || p["stock"] != 1.0 {
		t.Fatalf("product %v", p)
	}
	if first := p["reviews"].([]any)[0].(map[string]any); first["rating"] != 2.0 {
		t.Fatalf("reviews not newest first: %v", p["reviews"])
	}

	// Restart on the same data directory: everything is still there, and
	// the shop keeps working.
	s.stop()
	s = startShop(t, dir)
	code, _, body := s.do(http.MethodGet, "/products/"+id, "", "")
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"count":2`)) {
		t.Fatalf("after restart GET product: %d %s", code, body)
	}
	if code, body := s.post("/products/"+id+"/reviews", `{"customer_id": "368c748f-d636-4acb-a632-d5257ffb0764", "rating": 4}`); code != http.StatusCreated {
		t.Fatalf("POST review after restart: %d %v", code, body)
	}
	p, _ = s.waitProduct(id, func(m map[string]any) bool { return m["rating"].(map[string]any)["count"] == 3.0 })
	if avg := p["rating"].(map[string]any)["average"].(float64); fmt.Sprintf("%.2f", avg) != "3.67" {
		t.Fatalf("average after restart %v", avg)
	}
	ends := endOffsets(t, s.stack.Endpoints.Brokers)
	if ends[schemas.TopicProducts] != 1 || ends[schemas.TopicReviews] != 3 {
		t.Fatalf("records after restart: %v", ends)
	}
}

func endOffsets(t *testing.T, brokers []string, topics ...string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if len(topics) == 0 {
		topics = []string{schemas.TopicProducts, schemas.TopicReviews}
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Topic] += o.Offset })
	return out
}

// Bad input gets a problem+json 4xx, never a 500, and appends no event.
func TestBadInputIsRefusedAndAppendsNothing(t *testing.T) {
	s := startShop(t, t.TempDir())
	code, created := s.post("/products", seedProduct)
	if code != http.StatusCreated {
		t.Fatalf("POST /products: %d", code)
	}
	id := created["id"].(string)
	s.waitProduct(id, func(map[string]any) bool { return true })
	before := endOffsets(t, s.stack.Endpoints.Brokers)
	unknown := "0190a0a0-0000-7000-8000-000000000000"
	const customer = `"customer_id": "368c748f-d636-4acb-a632-d5257ffb0764"`
	cases := []struct {
		name, path, ctype, body string
		status                  int
		field                   string
	}{
		{"not json", "/products", "application/json", `{"title": `, 400, ""},
		{"empty body", "/products", "application/json", ``, 400, ""},
		{"array", "/products", "application/json", `[1]`, 400, ""},
		{"wrong type", "/products", "application/json", `{"title": "x", "price_cents": "9", "quantity": 1}`, 400, "price_cents"},
		{"unknown field", "/products", "application/json", `{"title": "x", "price_cents": 9, "quantity": 1, "colour": "blue"}`, 400, ""},
		{"two objects", "/products", "application/json", seedProduct + seedProduct, 400, ""},
		{"form content type", "/products", "application/x-www-form-urlencoded", seedProduct, 415, ""},
		{"missing title", "/products", "application/json", `{"price_cents": 9, "quantity": 1}`, 422, "title"},
		{"missing price", "/products", "application/json", `{"title": "x", "quantity": 1}`, 422, "price_cents"},
		{"blank title", "/products", "application/json", `{"title": " ", "price_cents": 9, "quantity": 1}`, 422, "title"},
		{"negative quantity", "/products", "application/json", `{"title": "x", "price_cents": 9, "quantity": -1}`, 422, "quantity"},
		{"zero price", "/products", "application/json", `{"title": "x", "price_cents": 0, "quantity": 1}`, 422, "price_cents"},
		{"photo not a url", "/products", "application/json", `{"title": "x", "price_cents": 9, "quantity": 1, "photo": "maillot.jpg"}`, 422, "photo"},
		{"review of unknown product", "/products/" + unknown + "/reviews", "application/json", `{` + customer + `, "rating": 5}`, 404, ""},
		{"review of malformed id", "/products/not-an-id/reviews", "application/json", `{` + customer + `, "rating": 5}`, 404, ""},
		{"rating 0", "/products/" + id + "/reviews", "application/json", `{` + customer + `, "rating": 0}`, 422, "rating"},
		{"rating 6", "/products/" + id + "/reviews", "application/json", `{` + customer + `, "rating": 6}`, 422, "rating"},
		{"rating 4.5", "/products/" + id + "/reviews", "application/json", `{` + customer + `, "rating": 4.5}`, 400, "rating"},
		{"missing rating", "/products/" + id + "/reviews", "application/json", `{` + customer + `}`, 422, "rating"},
		{"customer not a uuid", "/products/" + id + "/reviews", "application/json", `{"customer_id": "bob", "rating": 5}`, 422, "customer_id"},
		{"review not json", "/products/" + id + "/reviews", "application/json", `rating=5`, 400, ""},
		{"unknown product read", "/products/" + unknown, "", "", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := http.MethodPost
			if c.body == "" && c.ctype == "" {
				method = http.MethodGet
			}
			code, h, body := s.do(method, c.path, c.ctype, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var p struct {
				Status int `json:"status"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(body, &p); err != nil || p.Status != c.status {
				t.Fatalf("problem body %s (%v)", body, err)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("problem does not name field %s: %s", c.field, body)
			}
		})
	}
	// Nothing was appended: the outbox is empty and the topics did not grow.
	pool, err := pgdb.Connect(context.Background(), s.stack.Endpoints.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pending, err := outbox.Pending(context.Background(), pool)
	if err != nil || pending != 0 {
		t.Fatalf("outbox has %d rows (%v)", pending, err)
	}
	if after := endOffsets(t, s.stack.Endpoints.Brokers); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("topics grew from %v to %v", before, after)
	}
}

// One email, one account: a second sign-up with the same email (any case)
// is a 409 problem, and of 20 concurrent sign-ups with one new email exactly
// one is accepted; only accepted sign-ups reach the log.
func TestSignUpEmailIsUniqueUnderConcurrency(t *testing.T) {
	s := startShop(t, t.TempDir())
	if code, body := s.post("/customers", `{"email": "zizou@example.org", "name": "Zinédine", "password": "coupe du monde 98"}`); code != http.StatusCreated {
		t.Fatalf("sign up: %d %v", code, body)
	}
	code, h, body := s.do(http.MethodPost, "/customers", "application/json", `{"email": "ZIZOU@example.org", "name": "Other", "password": "coupe du monde 98"}`)
	if code != http.StatusConflict || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("same email again: %d %s", code, body)
	}
	codes := make(chan int, 20)
	for i := range 20 {
		go func() {
			c, _ := s.post("/customers", fmt.Sprintf(`{"email": "raggio@example.org", "name": "Raggio %d", "password": "coupe du monde 98"}`, i))
			codes <- c
		}()
	}
	count := map[int]int{}
	for range 20 {
		count[<-codes]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusConflict] != 19 {
		t.Fatalf("concurrent sign-ups: %v, want one 201 and nineteen 409", count)
	}
	s.waitRecords(schemas.TopicCustomers, 2)
}

// waitRecords waits until topic holds exactly n records, and fails if it
// holds more, or fewer after 10 s.
func (s *shop) waitRecords(topic string, n int64) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := endOffsets(s.t, s.stack.Endpoints.Brokers, topic)[topic]
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			s.t.Fatalf("%s holds %d records, want %d", topic, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvents waits until topic holds exactly n events of one type (its
// ce_type header), and fails if it holds more: for topics that other
// components also write to while the test runs (the saga on orders).
func (s *shop) waitEvents(topic, eventType string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := countEvents(s.t, s.stack.Endpoints.Brokers, topic, eventType)
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			s.t.Fatalf("%s holds %d %s events, want %d", topic, got, eventType, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countEvents reads topic up to its end offsets and counts the records
// whose ce_type is eventType.
func countEvents(t *testing.T, brokers []string, topic, eventType string) int {
	t.Helper()
	end := endOffsets(t, brokers, topic)[topic]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var read int64
	count := 0
	for read < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, read, end, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			for _, h := range r.Headers {
				if h.Key == eventlog.HeaderType && string(h.Value) == eventType {
					count++
				}
			}
		})
	}
	return count
}

// testLogOutput is where the shop under test logs: nowhere, unless
// SHOP_TEST_LOG=1 asks for its warnings and errors on stderr.
func testLogOutput() io.Writer {
	if os.Getenv("SHOP_TEST_LOG") == "1" {
		return os.Stderr
	}
	return io.Discard
}
