package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/platform/command"
	"shopstream/producers/customers"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
)

// blockingMongo is a MongoDB, spoken to over its wire protocol, whose
// read-model queries block: each find on a read model's collection (any
// but the alias collection) is announced on arrived and answered only
// when release lets it through (one receive each; closed: all). A find
// on a products collection answers one product, on any other none.
type blockingMongo struct {
	arrived chan string
	release chan struct{}
	once    sync.Once
}

func (m *blockingMongo) releaseAll() { m.once.Do(func() { close(m.release) }) }

const shedProductID = "0190f5a0-0000-7000-8000-000000000001"

// startBlocking serves a gateway of l, with metrics on reg, over a
// blockingMongo.
func startBlocking(t *testing.T, l Limits, reg prometheus.Registerer, bus *command.Bus) (*blockingMongo, string) {
	t.Helper()
	m := &blockingMongo{arrived: make(chan string, 16), release: make(chan struct{})}
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
			go m.serve(c)
		}
	}()
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + ln.Addr().String() + "/?directConnection=true"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	db := mc.Database("shop")
	if bus == nil {
		bus = command.NewBus()
	}
	g := New(Deps{Auth: testAuth, Commands: bus, Products: products.NewReader(db), Orders: orderviews.NewReader(db),
		Logger: slog.New(slog.DiscardHandler), Metrics: reg, Limits: l})
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = NewServer(g, l)
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(m.releaseAll) // before ts.Close, which waits for the blocked requests
	return m, ts.URL
}

// serve answers one connection: OP_QUERY (the driver's first hello) with
// OP_REPLY, OP_MSG with OP_MSG.
func (m *blockingMongo) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := int(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := binary.LittleEndian.Uint32(hdr[4:])
		opcode := binary.LittleEndian.Uint32(hdr[12:])
		body := make([]byte, size-16)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var cmd bson.Raw
		switch opcode {
		case 2004: // OP_QUERY: flags, collection (cstring), skip, limit, query
			rest := body[4:]
			rest = rest[strings.IndexByte(string(rest), 0)+1+8:]
			cmd = bson.Raw(rest[:binary.LittleEndian.Uint32(rest)])
		case 2013: // OP_MSG: flags, then a kind-0 section first
			rest := body[5:]
			cmd = bson.Raw(rest[:binary.LittleEndian.Uint32(rest)])
		default:
			return
		}
		reply, err := bson.Marshal(m.answer(cmd))
		if err != nil {
			return
		}
		var out []byte
		if opcode == 2004 {
			out = binary.LittleEndian.AppendUint32(make([]byte, 16), 0) // flags
			out = binary.LittleEndian.AppendUint64(out, 0)              // cursor id
			out = binary.LittleEndian.AppendUint32(out, 0)              // starting from
			out = binary.LittleEndian.AppendUint32(out, 1)              // documents
			binary.LittleEndian.PutUint32(out[12:], 1)                  // OP_REPLY
		} else {
			out = append(binary.LittleEndian.AppendUint32(make([]byte, 16), 0), 0) // flags, kind 0
			binary.LittleEndian.PutUint32(out[12:], 2013)
		}
		out = append(out, reply...)
		binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
		binary.LittleEndian.PutUint32(out[4:], reqID+1<<20)
		binary.LittleEndian.PutUint32(out[8:], reqID)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func (m *blockingMongo) answer(cmd bson.Raw) bson.D {
	elems, _ := cmd.Elements()
	if len(elems) == 0 {
		return bson.D{{Key: "ok", Value: 0.0}}
	}
	switch name := elems[0].Key(); strings.ToLower(name) {
	case "hello", "ismaster":
		return bson.D{{Key: "ismaster", Value: true}, {Key: "isWritablePrimary", Value: true}, {Key: "helloOk", Value: true},
			{Key: "maxBsonObjectSize", Value: int32(16 << 20)}, {Key: "maxMessageSizeBytes", Value: int32(48_000_000)},
			{Key: "maxWriteBatchSize", Value: int32(100_000)}, {Key: "localTime", Value: time.Now()},
			{Key: "minWireVersion", Value: int32(0)}, {Key: "maxWireVersion", Value: int32(21)}, {Key: "ok", Value: 1.0}}
	case "find":
		coll := elems[0].Value().StringValue()
		var batch bson.A
		if coll != runner.AliasCollection {
			m.arrived <- coll
			<-m.release
			if strings.HasPrefix(coll, "products") {
				batch = append(batch, bson.D{{Key: "_id", Value: shedProductID}, {Key: "_rev", Value: int64(1)},
					{Key: "registered", Value: true}, {Key: "title", Value: "Espresso cup"}, {Key: "price_cents", Value: int64(1250)},
					{Key: "currency", Value: "EUR"}, {Key: "stock", Value: int64(3)}})
			}
		}
		if batch == nil {
			batch = bson.A{}
		}
		return bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: batch}, {Key: "id", Value: int64(0)},
			{Key: "ns", Value: "shop." + coll}}}, {Key: "ok", Value: 1.0}}
	}
	return bson.D{{Key: "ok", Value: 1.0}}
}

// shedCount is MetricShed{class} in reg.
func shedCount(t *testing.T, reg *prometheus.Registry, class string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricShed {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" && l.GetValue() == class {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{class=%q}", MetricShed, class)
	return 0
}

// wantShed checks that resp, p is a shed query: 503 problem+json of type
// overloaded, with Retry-After.
func wantShed(t *testing.T, what string, resp *http.Response, p Problem) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != retryShed ||
		resp.Header.Get("Content-Type") != "application/problem+json" ||
		p.Type != "https://shopstream.dev/problems/overloaded" || p.Status != http.StatusServiceUnavailable {
		t.Errorf("%s: %d Retry-After %q Content-Type %q %+v, want 503 problem+json overloaded with Retry-After: %s",
			what, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), p, retryShed)
	}
}

// getAsync sends GET url and delivers its status on the returned channel.
func getAsync(t *testing.T, url string) <-chan int {
	codes := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
			codes <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes <- resp.StatusCode
	}()
	return codes
}

// With two queries stuck in the read model and MaxQueries 2, a third is
// answered 503 with Retry-After without reaching the read model; once a
// query finishes, its slot serves the next one.
func TestQueriesOverTheCapAreShed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, url := startBlocking(t, Limits{MaxQueries: 2}, reg, nil)
	product := url + "/products/" + shedProductID
	first, second := getAsync(t, product), getAsync(t, product)
	<-m.arrived
	<-m.arrived // both hold a slot, blocked in the read model

	resp, p := send(t, http.MethodGet, product, "")
	wantShed(t, "3rd concurrent GET", resp, p)
	select {
	case coll := <-m.arrived:
		t.Errorf("the shed query reached the read model (%s)", coll)
	default:
	}
	if n := shedCount(t, reg, shedQuery); n != 1 {
		t.Errorf("%s{class=query} = %v, want 1", MetricShed, n)
	}

	m.release <- struct{}{} // one of the two finishes
	var still <-chan int
	var done int
	select {
	case done = <-first:
		still = second
	case done = <-second:
		still = first
	}
	if done != http.StatusOK {
		t.Fatalf("released query: %d, want 200", done)
	}
	fourth := getAsync(t, product)
	if coll := <-m.arrived; !strings.HasPrefix(coll, "products") {
		t.Errorf("the query after a slot freed read %s, want the products read model", coll)
	}
	m.releaseAll()
	if code := <-fourth; code != http.StatusOK {
		t.Errorf("query after a slot freed: %d, want 200", code)
	}
	if code := <-still; code != http.StatusOK {
		t.Errorf("blocked query, released: %d, want 200", code)
	}
	if n := shedCount(t, reg, shedQuery); n != 1 {
		t.Errorf("%s{class=query} = %v after recovery, want still 1", MetricShed, n)
	}
}

// Every read-model route shares the query bound; routes that are not
// read-model queries (health, documents) are not shed by it.
func TestEveryQueryRouteIsShed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, url := startBlocking(t, Limits{MaxQueries: 1}, reg, nil)
	held := getAsync(t, url+"/products/"+shedProductID)
	<-m.arrived
	routes := []string{"/products", "/products/" + shedProductID, "/orders/" + shedProductID, "/customers/" + shedProductID + "/orders"}
	for _, path := range routes {
		resp, p := send(t, http.MethodGet, url+path, "")
		wantShed(t, "GET "+path, resp, p)
	}
	if n := shedCount(t, reg, shedQuery); n != float64(len(routes)) {
		t.Errorf("%s{class=query} = %v, want %d", MetricShed, n, len(routes))
	}
	for _, path := range []string{"/healthz", "/openapi.json"} {
		if resp, _ := send(t, http.MethodGet, url+path, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s while queries are full: %d, want 200", path, resp.StatusCode)
		}
	}
	m.releaseAll()
	if code := <-held; code != http.StatusOK {
		t.Errorf("held query: %d, want 200", code)
	}
}

// A command the bus sheds is answered 429 with Retry-After and counted as
// class command.
func TestShedCommandsAreCounted(t *testing.T) {
	entered, leave := make(chan struct{}), make(chan struct{})
	bus := command.NewBus(command.Shed(1))
	command.Register(bus, func(context.Context, command.Meta, customers.SignUp) (command.Result, error) {
		entered <- struct{}{}
		<-leave
		return command.Created("/customers/x", "x"), nil
	})
	reg := prometheus.NewRegistry()
	_, url := startBlocking(t, Limits{}, reg, bus)
	held := make(chan int, 1)
	go func() {
		resp, err := http.Post(url+"/customers", "application/json", strings.NewReader(signUpJSON))
		if err != nil {
			t.Error(err)
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-entered
	resp, p := send(t, http.MethodPost, url+"/customers", signUpJSON)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.HasSuffix(p.Type, "/overloaded") {
		t.Errorf("2nd command over the bus's cap: %d Retry-After %q %+v, want 429 overloaded with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), p)
	}
	close(leave)
	if code := <-held; code != http.StatusCreated {
		t.Errorf("admitted command: %d, want 201", code)
	}
	if n := shedCount(t, reg, shedCommand); n != 1 {
		t.Errorf("%s{class=command} = %v, want 1", MetricShed, n)
	}
	if n := shedCount(t, reg, shedQuery); n != 0 {
		t.Errorf("%s{class=query} = %v, want 0", MetricShed, n)
	}
}

const signUpJSON = `{"email": "zizou@example.org", "name": "Zinédine", "password": "coupe du monde 98"}`

// The OpenAPI document tells clients that every shed route may answer 503.
func TestOpenAPIDocumentsShedding(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, path := range []string{"/products", "/products/{id}", "/orders/{id}", "/customers/{id}/orders", "/products/{id}/events"} {
		item := doc.Paths.Value(path)
		if item == nil || item.Get == nil {
			t.Errorf("GET %s: not in the document", path)
			continue
		}
		if r := item.Get.Responses.Value("503"); r == nil || r.Value.Headers["Retry-After"] == nil {
			t.Errorf("GET %s: no 503 response with Retry-After", path)
		}
	}
}
