package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/edge/auth"
	"shopstream/internal/platform/command"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/reviews"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
)

// deadMongo is a MongoDB that accepts connections and never answers.
func deadMongo(t *testing.T) *mongo.Database {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + ln.Addr().String() + "/?directConnection=true"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return mc.Database("shop")
}

// storeErr is what every command handler of the test bus answers.
type testShop struct {
	url      string
	storeErr error
	handled  int
}

func startGateway(t *testing.T, l Limits, db *mongo.Database) *testShop {
	t.Helper()
	s := &testShop{}
	bus := command.NewBus()
	handler := func(ctx context.Context) (command.Result, error) {
		s.handled++
		if s.storeErr != nil {
			return command.Result{}, s.storeErr
		}
		return command.Created("/x", "x"), nil
	}
	command.Register(bus, func(ctx context.Context, _ command.Meta, _ catalog.RegisterProduct) (command.Result, error) {
		return handler(ctx)
	})
	command.Register(bus, func(ctx context.Context, _ command.Meta, _ customers.SignUp) (command.Result, error) {
		return handler(ctx)
	})
	command.Register(bus, func(ctx context.Context, _ command.Meta, _ reviews.AddReview) (command.Result, error) {
		return handler(ctx)
	})
	d := Deps{Auth: testAuth, Commands: bus, Logger: slog.New(slog.DiscardHandler), Limits: l}
	if db != nil {
		d.Products, d.Orders = products.NewReader(db), orderviews.NewReader(db)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = NewServer(New(d), l)
	ts.Start()
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

func send(t *testing.T, method, url, body string) (*http.Response, Problem) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(auth.HeaderAPIKey, testStaffKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p Problem
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 300 && ct != "application/problem+json" {
		t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json: %s", method, url, resp.StatusCode, ct, b)
	}
	_ = json.Unmarshal(b, &p)
	return resp, p
}

func TestTextFieldsRefuseNULAndInvalidUTF8(t *testing.T) {
	s := startGateway(t, Limits{}, nil)
	pid := "0190f5a0-0000-7000-8000-000000000001"
	cases := []struct{ path, body, field string }{
		{"/products", `{"title": "a\u0000b", "price_cents": 1, "quantity": 1}`, "title"},
		{"/products", "{\"title\": \"a\xffb\", \"price_cents\": 1, \"quantity\": 1}", "title"},
		{"/customers", `{"email": "a@b.c", "name": "x\u0000"}`, "name"},
		{"/customers", "{\"email\": \"a@b.c\", \"name\": \"\xc3\"}", "name"},
		{"/products/" + pid + "/reviews", `{"customer_id": "` + pid + `", "rating": 5, "comment": "\u0000"}`, "comment"},
		{"/products/" + pid + "/reviews", "{\"customer_id\": \"" + pid + "\", \"rating\": 5, \"comment\": \"ok\xe2\x82\"}", "comment"},
	}
	for _, c := range cases {
		resp, p := send(t, http.MethodPost, s.url+c.path, c.body)
		if resp.StatusCode != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != c.field {
			t.Errorf("POST %s %q: %d %+v, want 422 naming %s", c.path, c.body, resp.StatusCode, p, c.field)
		}
	}
	if s.handled != 0 {
		t.Errorf("%d commands reached the bus", s.handled)
	}
	// Escaped backslash before u0000 is text, not a NUL; U+FFFD as sent is valid.
	if resp, p := send(t, http.MethodPost, s.url+"/products", `{"title": "a\\u0000 \ufffd", "price_cents": 1, "quantity": 1}`); resp.StatusCode != http.StatusCreated {
		t.Errorf("valid text: %d %+v, want 201", resp.StatusCode, p)
	}
	if resp, p := send(t, http.MethodGet, s.url+"/products?after=%00", ""); resp.StatusCode != http.StatusUnprocessableEntity || p.Errors[0].Field != "after" {
		t.Errorf("NUL in a query parameter: %d %+v, want 422 naming after", resp.StatusCode, p)
	}
	if resp, p := send(t, http.MethodGet, s.url+"/products/%FF", ""); resp.StatusCode != http.StatusUnprocessableEntity || p.Errors[0].Field != "id" {
		t.Errorf("invalid UTF-8 in a path parameter: %d %+v, want 422 naming id", resp.StatusCode, p)
	}
}

func TestBadTextFindsTheField(t *testing.T) {
	for body, want := range map[string]string{
		`{"items": [{"product_id": "a"}, {"product_id": "\u0000"}]}`: "items[1].product_id",
		`{"a": {"b": 1, "c": ["x", "y\u0000"]}}`:                     "a.c[1]",
		`{"k\u0000": 1}`:                                             "k\x00",
		`{"a": 1, "b": "\u0000"}`:                                    "b",
	} {
		f, _, ok := badText([]byte(body))
		if !ok || f != want {
			t.Errorf("badText(%s) = %q, %v; want %q", body, f, ok, want)
		}
	}
	if _, _, ok := badText([]byte(`{"a": "\\u0000", "b": [1, "\u00e9"]}`)); ok {
		t.Error("badText found a NUL in valid text")
	}
}

func TestMuxAnswersAreProblems(t *testing.T) {
	s := startGateway(t, Limits{}, nil)
	resp, p := send(t, http.MethodPut, s.url+"/orders", `{}`)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || p.Status != 405 {
		t.Errorf("PUT /orders: %d Allow %q %+v, want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"), p)
	}
	resp, p = send(t, http.MethodGet, s.url+"/nowhere", "")
	if resp.StatusCode != http.StatusNotFound || p.Status != 404 {
		t.Errorf("GET /nowhere: %d %+v", resp.StatusCode, p)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/products/../products", nil)
	req.URL.Opaque = "//" + strings.TrimPrefix(s.url, "http://") + "/products/../products"
	r2, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode/100 != 3 || r2.Header.Get("Location") == "" || r2.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unclean path: %d Location %q Content-Type %q, want a redirect as problem+json", r2.StatusCode, r2.Header.Get("Location"), r2.Header.Get("Content-Type"))
	}
	resp, p = send(t, http.MethodGet, s.url+"/products?q="+strings.Repeat("x", 1100_000), "")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || p.Status != 431 {
		t.Errorf("1.1 MB URL: %d %+v, want 431 problem", resp.StatusCode, p)
	}
}

func TestSlowBodyIsCutOff(t *testing.T) {
	s := startGateway(t, Limits{BodyTimeout: 300 * time.Millisecond}, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /products HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\"", testStaffKey)
	began := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		resp.Body.Close()
	}
	took := time.Since(began)
	if err == nil && resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("slow body: %d, want 408 or the connection closed", resp.StatusCode)
	}
	if took > 2*time.Second {
		t.Errorf("slow body cut off after %v, want about the 300ms read timeout (err %v)", took, err)
	}
}

func TestDependencyDownIs503(t *testing.T) {
	s := startGateway(t, Limits{}, nil)
	refused, err := pgconn.Connect(context.Background(), "postgres://u@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		refused.Close(context.Background())
		t.Fatal("connected to port 1")
	}
	for _, e := range []error{&pgconn.PgError{Code: "57P03", Message: "the database system is shutting down"}, fmt.Errorf("append: %w", err)} {
		s.storeErr = e
		resp, p := send(t, http.MethodPost, s.url+"/products", `{"title": "t", "price_cents": 1, "quantity": 1}`)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || p.Dependency != DepPostgres ||
			!strings.HasSuffix(p.Type, "/unavailable") {
			t.Errorf("%v: %d Retry-After %q %+v, want 503 unavailable naming postgresql", e, resp.StatusCode, resp.Header.Get("Retry-After"), p)
		}
	}
	s.storeErr = errors.New("a bug")
	if resp, _ := send(t, http.MethodPost, s.url+"/products", `{"title": "t", "price_cents": 1, "quantity": 1}`); resp.StatusCode != 500 {
		t.Errorf("a bug: %d, want 500", resp.StatusCode)
	}
}

func TestReadAgainstDeadMongoAnswers503WithinTheDeadline(t *testing.T) {
	s := startGateway(t, Limits{QueryTimeout: 500 * time.Millisecond}, deadMongo(t))
	began := time.Now()
	resp, p := send(t, http.MethodGet, s.url+"/products/0190f5a0-0000-7000-8000-000000000001", "")
	took := time.Since(began)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || p.Dependency != DepMongo {
		t.Errorf("GET against a dead MongoDB: %d %+v, want 503 naming mongodb", resp.StatusCode, p)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("answered after %v, want within the 500ms read deadline", took)
	}
}

func TestEventStreamsAreCapped(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := New(Deps{Auth: testAuth, Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxStreams: 1}, Metrics: reg})
	ts := httptest.NewServer(g)
	defer ts.Close()
	g.shed.streams.Enter(context.Background(), 0) // one stream open: the cap
	resp, p := send(t, http.MethodGet, ts.URL+"/products/0190f5a0-0000-7000-8000-000000000001/events", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.HasSuffix(p.Type, "/overloaded") {
		t.Errorf("stream over the cap: %d Retry-After %q %+v, want 503 overloaded with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), p)
	}
	g.leaveStream()
	if n := shedCount(t, reg, shedStream); n != 1 {
		t.Errorf("%s{class=stream} = %v, want 1", MetricShed, n)
	}
}

func TestServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), Limits{})
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout != DefaultBodyTimeout || srv.WriteTimeout <= srv.ReadTimeout+DefaultCommandTimeout ||
		srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= MaxHeaderBytes {
		t.Errorf("server: %+v", srv)
	}
}
