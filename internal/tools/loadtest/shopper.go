package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"shopstream/internal/edge/auth"
)

// Action is one thing a simulated shopper does, with its share of all
// requests.
type Action struct {
	Name   string
	Weight int
}

// Actions are what shoppers do, in realistic proportions: mostly browsing,
// about one request in eight an order.
var Actions = []Action{
	{"browse", 22},    // GET /products
	{"view", 30},      // GET /products/{id}, hot products most
	{"cart", 12},      // POST /carts/items
	{"order", 13},     // POST /orders, card or SEPA, items or the cart
	{"review", 8},     // POST /products/{id}/reviews
	{"signup", 5},     // POST /customers
	{"my-orders", 4},  // GET /customers/{id}/orders
	{"order-view", 5}, // GET /orders/{id}
	{"restock", 1},    // POST /products/{id}/restock, a sold-out product
}

// Catalogue is the shop a run sets up before its load: Products products of
// limited stock, the HotProducts most viewed and ordered holding least, so
// that they sell out during a spike.
type Catalogue struct {
	Products    int
	HotProducts int
	HotStock    int64
	Stock       int64
	Customers   int // signed up before the load
}

// DefaultCatalogue suits a one-minute run of a few hundred orders.
var DefaultCatalogue = Catalogue{Products: 40, HotProducts: 5, HotStock: 15, Stock: 300, Customers: 40}

// job is one scheduled request: what and when.
type job struct {
	at     time.Duration // since the start of the load
	action string
	r1, r2 uint64 // the choices (customer, product, amount), drawn by the scheduler
	r3     float64
}

// world is what the shoppers know: the catalogue, the customers (and
// their tokens: every shopper acts as itself), their carts and orders.
// Every accepted command is recorded in it.
type world struct {
	mu        sync.Mutex
	products  []product // by popularity rank
	customers []string
	logins    map[string]login            // by customer id
	carts     map[string]map[string]int64 // customer -> product -> quantity
	orders    map[string][]string         // customer -> order ids
	ownerOf   map[string]string           // order id -> customer
	accepted  Accepted
	zipf      *rand.Zipf
	zipfMu    sync.Mutex
	// cursors are the last pages' next cursors, as GET /products gave
	// them: a second page follows one, as a shopper follows "next".
	cursors []string
}

// maxCursors is how many next cursors the world remembers.
const maxCursors = 64

type product struct {
	id, title string
}

// login is a shopper's credentials and current token.
type login struct {
	email, token string
}

// shopperPassword is every shopper's password.
const shopperPassword = "a load-test shopper's password"

// who a request acts as: staff (the API key), nobody, or a customer (its
// "Bearer <token>").
type who string

const (
	asStaff     who = "staff"
	asAnonymous who = "anonymous"
)

// Accepted is every command the shop answered 2xx to (ids from the
// answers), the input of the invariant checks.
type Accepted struct {
	Customers []string
	Products  []string
	Reviews   []string
	Orders    []string
	CartAdds  map[[2]string]int // (customer, product) -> accepted adds
}

// client sends the shoppers' requests and records every answer.
type client struct {
	base  string
	admin string // the shop's admin listener ("" unknown): GET /metrics, /lag
	// http presents the staff key on requests with no credentials of
	// their own (auth.Transport): setup, restocks, the samplers.
	http *http.Client
	rec  *Recorder
	// onAnswer, when set before the load, sees every answer as it comes
	// (the ramp's accepted→visible probe).
	onAnswer func(route string, status int, id string)
}

// result is an answer: its status and the id it created, if any.
type result struct {
	status int
	id     string
}

// do sends one request, records it under route and decodes the "id" of a
// 2xx body. A transport error is status 0.
func (c *client) do(ctx context.Context, as who, route, method, path string, body any) result {
	return c.doJSON(ctx, as, route, method, path, body, nil)
}

// doJSON is do, decoding a 2xx answer into out when out is not nil.
func (c *client) doJSON(ctx context.Context, as who, route, method, path string, body, out any) result {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err) // the bodies are this package's own structs
		}
		rd = bytes.NewReader(b)
	}
	began := time.Now()
	c.rec.Started(began)
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.rec.Record(route, began, 0, 0)
		return result{}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch as {
	case asStaff:
	case asAnonymous:
		req.Header.Set(auth.HeaderAnonymous, "1")
	default:
		req.Header.Set("Authorization", string(as))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		timeout := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
		c.rec.record(route, began, time.Since(began), answer{timeout: timeout && ctx.Err() == nil})
		return result{}
	}
	defer resp.Body.Close()
	var created struct {
		ID string `json:"id"`
	}
	switch {
	case resp.StatusCode/100 == 2 && out != nil:
		_ = json.NewDecoder(resp.Body).Decode(out)
	case resp.StatusCode/100 == 2 && method == http.MethodPost:
		_ = json.NewDecoder(resp.Body).Decode(&created)
	default:
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	c.rec.record(route, began, time.Since(began), answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After") != ""})
	if c.onAnswer != nil {
		c.onAnswer(route, resp.StatusCode, created.ID)
	}
	return result{status: resp.StatusCode, id: created.ID}
}

func ok(r result) bool { return r.status/100 == 2 }

// setup registers the catalogue and signs up the first customers; these
// requests are not part of the measured load.
func (w *world) setup(ctx context.Context, c *client, cat Catalogue, seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := range cat.Products {
		stock := cat.Stock
		if i < cat.HotProducts {
			stock = cat.HotStock
		}
		title := fmt.Sprintf("%s %s #%d", adjectives[rng.IntN(len(adjectives))], nouns[rng.IntN(len(nouns))], i+1)
		r := c.do(ctx, asStaff, "setup", http.MethodPost, "/products", map[string]any{
			"title": title, "price_cents": 500 + rng.IntN(20000), "quantity": stock,
		})
		if !ok(r) {
			return fmt.Errorf("register product %d: HTTP %d", i, r.status)
		}
		w.products = append(w.products, product{id: r.id, title: title})
		w.accepted.Products = append(w.accepted.Products, r.id)
	}
	for signedUp, limited := 0, 0; signedUp < cat.Customers; {
		r := w.signup(ctx, c, "setup")
		switch {
		case ok(r):
			signedUp++
		case r.status == http.StatusTooManyRequests && limited < 120:
			// The shop limits sign-ups per address: wait as told.
			limited++
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		default:
			return fmt.Errorf("sign up: HTTP %d", r.status)
		}
	}
	// Popularity follows a Zipf law: the first product is the hottest.
	w.zipf = rand.NewZipf(rand.New(rand.NewPCG(uint64(seed), 2)), 1.2, 1, uint64(len(w.products)-1))
	return nil
}

var (
	adjectives = []string{"Red", "Compact", "Vintage", "Smart", "Organic", "Wireless", "Heavy", "Tiny"}
	nouns      = []string{"Kettle", "Lamp", "Backpack", "Headphones", "Teapot", "Bicycle", "Camera", "Sofa"}
)

// signup signs a shopper up, then logs it in (route "POST /auth/token"
// in the load): it shops only once it has its token.
func (w *world) signup(ctx context.Context, c *client, route string) result {
	w.mu.Lock()
	n := len(w.customers) + len(w.accepted.Customers)
	w.mu.Unlock()
	email := fmt.Sprintf("shopper-%d-%d@loadtest.example", time.Now().UnixNano(), n)
	r := c.do(ctx, asAnonymous, route, http.MethodPost, "/customers", map[string]any{
		"email": email, "name": fmt.Sprintf("Shopper %d", n), "password": shopperPassword,
	})
	if !ok(r) {
		return r
	}
	w.mu.Lock()
	w.accepted.Customers = append(w.accepted.Customers, r.id)
	w.mu.Unlock()
	if lr := w.login(ctx, c, route, r.id, email); !ok(lr) {
		return lr
	}
	w.mu.Lock()
	w.customers = append(w.customers, r.id)
	w.mu.Unlock()
	return r
}

// login gets customer id a token (again, once it expired).
func (w *world) login(ctx context.Context, c *client, route, id, email string) result {
	if route != "setup" {
		route = "POST /auth/token"
	}
	tok, r := c.token(ctx, route, email)
	if !ok(r) {
		return r // refused, or 429: the caller may wait and sign up another
	}
	w.mu.Lock()
	w.logins[id] = login{email: email, token: tok}
	w.mu.Unlock()
	return result{status: http.StatusOK, id: id}
}

// token logs email in and returns its token and the answer.
func (c *client) token(ctx context.Context, route, email string) (string, result) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r := c.doJSON(ctx, asAnonymous, route, http.MethodPost, "/auth/token", map[string]any{"email": email, "password": shopperPassword}, &tok)
	return tok.AccessToken, r
}

// as is who a shopper's request acts as: the customer, by its token.
func (w *world) as(customer string) who {
	w.mu.Lock()
	defer w.mu.Unlock()
	return who("Bearer " + w.logins[customer].token)
}

// shop sends a customer's request; a token that expired meanwhile (401)
// is renewed by logging in again, and the request sent once more.
func (w *world) shop(ctx context.Context, c *client, customer, route, method, path string, body any) result {
	r := c.do(ctx, w.as(customer), route, method, path, body)
	if r.status != http.StatusUnauthorized {
		return r
	}
	w.mu.Lock()
	email := w.logins[customer].email
	w.mu.Unlock()
	if lr := w.login(ctx, c, route, customer, email); !ok(lr) {
		return r
	}
	return c.do(ctx, w.as(customer), route, method, path, body)
}

// hot picks a product by popularity.
func (w *world) hot() product {
	w.zipfMu.Lock()
	i := w.zipf.Uint64()
	w.zipfMu.Unlock()
	return w.products[i]
}

func (w *world) customer(r uint64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.customers[r%uint64(len(w.customers))]
}

// run performs j's action.
func (w *world) run(ctx context.Context, c *client, j job) {
	switch j.action {
	case "browse":
		path := "/products?limit=20"
		w.mu.Lock()
		if j.r1%3 == 0 && len(w.cursors) > 0 { // a second page now and then
			path += "&after=" + url.QueryEscape(w.cursors[j.r2%uint64(len(w.cursors))])
		}
		w.mu.Unlock()
		var page struct {
			Next *string `json:"next"`
		}
		if r := c.doJSON(ctx, asAnonymous, "GET /products", http.MethodGet, path, nil, &page); ok(r) && page.Next != nil {
			w.mu.Lock()
			if len(w.cursors) < maxCursors {
				w.cursors = append(w.cursors, *page.Next)
			} else {
				w.cursors[j.r2%maxCursors] = *page.Next
			}
			w.mu.Unlock()
		}
	case "view":
		c.do(ctx, asAnonymous, "GET /products/{id}", http.MethodGet, "/products/"+w.hot().id, nil)
	case "cart":
		cust, p := w.customer(j.r1), w.hot()
		qty := int64(1 + j.r2%2)
		r := w.shop(ctx, c, cust, "POST /carts/items", http.MethodPost, "/carts/items", map[string]any{"product_id": p.id, "quantity": qty})
		if ok(r) {
			w.mu.Lock()
			if w.carts[cust] == nil {
				w.carts[cust] = map[string]int64{}
			}
			w.carts[cust][p.id] += qty
			w.accepted.CartAdds[[2]string{cust, p.id}]++
			w.mu.Unlock()
		}
	case "order":
		w.order(ctx, c, j)
	case "review":
		p := w.hot()
		w.shop(ctx, c, w.customer(j.r1), "POST /products/{id}/reviews", http.MethodPost, "/products/"+p.id+"/reviews", map[string]any{
			"rating": 1 + j.r2%5, "comment": comments[j.r2%uint64(len(comments))],
		}).record(func(id string) { w.mu.Lock(); w.accepted.Reviews = append(w.accepted.Reviews, id); w.mu.Unlock() })
	case "signup":
		w.signup(ctx, c, "POST /customers")
	case "my-orders":
		cust := w.customer(j.r1)
		w.shop(ctx, c, cust, "GET /customers/{id}/orders", http.MethodGet, "/customers/"+cust+"/orders", nil)
	case "order-view":
		w.mu.Lock()
		var id, owner string
		if n := len(w.accepted.Orders); n > 0 {
			id = w.accepted.Orders[j.r1%uint64(n)]
			owner = w.ownerOf[id]
		}
		w.mu.Unlock()
		if id == "" { // no order yet: look at a product instead
			c.do(ctx, asAnonymous, "GET /products/{id}", http.MethodGet, "/products/"+w.hot().id, nil)
			return
		}
		w.shop(ctx, c, owner, "GET /orders/{id}", http.MethodGet, "/orders/"+id, nil) // a customer looks at their own order
	case "restock":
		p := w.products[j.r1%uint64(min(len(w.products), 5))]
		c.do(ctx, asStaff, "POST /products/{id}/restock", http.MethodPost, "/products/"+p.id+"/restock", map[string]any{"quantity": 5})
	}
}

var comments = []string{"Great value.", "Arrived late, works fine.", "Not what the photo showed.", "Five stars!", ""}

// record calls f with the created id of an accepted answer.
func (r result) record(f func(id string)) {
	if ok(r) && r.id != "" {
		f(r.id)
	}
}

// order places an order: a third check out the shopper's cart, the rest
// buy one or two products directly; 30% pay by SEPA transfer.
func (w *world) order(ctx context.Context, c *client, j job) {
	cust := w.customer(j.r1)
	method := "card"
	if j.r3 < 0.3 {
		method = "sepa"
	}
	body := map[string]any{"payment_method": method}
	w.mu.Lock()
	fromCart := len(w.carts[cust]) > 0 && j.r2%3 == 0
	w.mu.Unlock()
	if !fromCart {
		items := []map[string]any{}
		seen := map[string]bool{}
		for k := range 1 + j.r2%2 {
			p := w.hot()
			if seen[p.id] {
				continue
			}
			seen[p.id] = true
			items = append(items, map[string]any{"product_id": p.id, "quantity": 1 + (j.r2>>(k+1))%2})
		}
		body["items"] = items
	}
	r := w.shop(ctx, c, cust, "POST /orders", http.MethodPost, "/orders", body)
	if !ok(r) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.accepted.Orders = append(w.accepted.Orders, r.id)
	w.ownerOf[r.id] = cust
	w.orders[cust] = append(w.orders[cust], r.id)
	if fromCart {
		delete(w.carts, cust)
	}
}

// snapshot copies what was accepted so far.
func (w *world) snapshot() Accepted {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := Accepted{
		Customers: append([]string(nil), w.accepted.Customers...),
		Products:  append([]string(nil), w.accepted.Products...),
		Reviews:   append([]string(nil), w.accepted.Reviews...),
		Orders:    append([]string(nil), w.accepted.Orders...),
		CartAdds:  make(map[[2]string]int, len(w.accepted.CartAdds)),
	}
	for k, v := range w.accepted.CartAdds {
		a.CartAdds[k] = v
	}
	return a
}

func newWorld() *world {
	return &world{carts: map[string]map[string]int64{}, orders: map[string][]string{}, ownerOf: map[string]string{},
		logins: map[string]login{}, accepted: Accepted{CartAdds: map[[2]string]int{}}}
}

// pick draws an action by weight.
func pick(rng *rand.Rand) string {
	total := 0
	for _, a := range Actions {
		total += a.Weight
	}
	n := rng.IntN(total)
	for _, a := range Actions {
		if n < a.Weight {
			return a.Name
		}
		n -= a.Weight
	}
	return Actions[0].Name
}
