// Package gateway is the shop's HTTP front door: it turns requests into
// commands for the write services (producers/…) and serves queries from the
// MongoDB read models only, never from the write model. Bad input gets an
// RFC 9457 problem (400 malformed, 404 unknown id, 409 conflict, 413, 415,
// 422 invalid) and never reaches a command, so it appends no event.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/edge/auth"
	"shopstream/internal/edge/stockwatch"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/password"
	"shopstream/internal/platform/tracing"
	"shopstream/producers/carts"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/orders"
	"shopstream/producers/reviews"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
)

// Check is one part the shop needs, for /readyz (and /healthz).
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps are what the gateway calls.
type Deps struct {
	Commands *command.Bus // every context's command handlers
	// Auth authenticates callers and issues customers' tokens; nil admits
	// anonymous callers to the public routes only (every other is 503).
	Auth *auth.Authenticator
	// CORSOrigins are the origins whose pages may call the API from a
	// browser (rs/cors); none, the default, denies every cross-origin
	// read: no CORS header is ever sent.
	CORSOrigins []string
	// Login checks a customer's email and password (POST /auth/token).
	Login    func(ctx context.Context, email string, pw password.Plain) (customerID string, ok bool, err error)
	Products *products.Reader
	Orders   *orderviews.Reader
	Stock    *stockwatch.Hub // sold-out and restock notices, for GET /products/{id}/events
	// AsyncAPI generates what GET /asyncapi.json answers, the AsyncAPI
	// document of the event log (nil: 404).
	AsyncAPI func() ([]byte, error)
	Checks   []Check
	Logger   *slog.Logger
	// Metrics, if set, is where New registers MetricRequestDuration and
	// MetricShed (once: New panics if they are registered there already).
	Metrics prometheus.Registerer
	// Tracing traces every request with a server span (see withTracing);
	// nil records nothing but still passes a traceparent on.
	Tracing trace.TracerProvider
	// Limits are the server-side deadlines of queries and commands and
	// the caps on queries and event streams (zero fields: the defaults).
	Limits Limits
}

// Gateway serves the shop's HTTP API.
type Gateway struct {
	d       Deps
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // route behind the request-wide concerns
	inner   http.Handler // mux behind the idempotency key
	routes  []string
	limits  Limits
	shed    *shedder // the bounds on queries and event streams
	limit   limiters // the abuse limits (admit)

	ending  chan struct{} // closed by EndStreams
	endOnce sync.Once

	asyncDoc asyncAPIDoc
}

// New returns the gateway's handler.
func New(d Deps) *Gateway {
	g := &Gateway{d: d, log: d.Logger.With("component", "gateway"), mux: http.NewServeMux(), limits: d.Limits.withDefaults(),
		ending: make(chan struct{})}
	g.shed = newShedder(g.limits, d.Metrics)
	g.limit = newLimiters(g.limits)
	g.inner = withIdempotencyKey(g.mux)
	g.handle("GET /healthz", g.healthz)
	g.handle("GET /openapi.json", g.openAPI)
	g.handle("GET /asyncapi.json", g.asyncAPI)
	g.handle("POST /customers", g.signUp)
	g.handle("POST /auth/token", g.login)
	g.handle("DELETE /customers/{id}", g.eraseCustomer)
	g.handle("POST /products", g.registerProduct)
	g.handle("POST /products/{id}/restock", g.restockProduct)
	g.handle("POST /products/{id}/reviews", g.addReview)
	g.handle("GET /products", g.query(g.listProducts))
	g.handle("GET /products/{id}", g.query(g.getProduct))
	g.handle(routeEvents, g.productEvents)
	g.handle("POST /carts/items", g.addToCart)
	g.handle("DELETE /carts/{customer_id}/items/{product_id}", g.removeFromCart)
	g.handle("POST /orders", g.placeOrder)
	g.handle("GET /orders/{id}", g.query(g.getOrder))
	g.handle("GET /customers/{id}/orders", g.query(g.listCustomerOrders))
	g.handler = withTracing(d.Tracing, withMetrics(d.Metrics, http.HandlerFunc(g.route)))
	if len(d.CORSOrigins) > 0 {
		g.handler = cors.New(cors.Options{
			AllowedOrigins: d.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", headerIdempotencyKey, "X-Correlation-ID", tracing.Header},
			ExposedHeaders: []string{"Location", "Retry-After", "X-Correlation-ID", headerReplayed},
			MaxAge:         600,
		}).Handler(g.handler)
	}
	return g
}

// handle registers a route and remembers its pattern for Routes.
func (g *Gateway) handle(pattern string, h http.HandlerFunc) {
	g.routes = append(g.routes, pattern)
	g.mux.Handle(pattern, checkParams(pattern, h))
}

// Routes lists the patterns the gateway serves ("METHOD /path/{param}"),
// in registration order; the OpenAPI document must describe exactly these.
func (g *Gateway) Routes() []string { return slices.Clone(g.routes) }

// ServeHTTP routes a request; unknown routes get a 404 problem. Every
// answer carries the request's X-Correlation-ID (a new one when it sent
// none or not a UUID). Every request is traced and measured by its route
// (withTracing, withMetrics).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	corr := r.Header.Get("X-Correlation-ID")
	if uuid.Validate(corr) != nil {
		corr = uuid.NewString()
	}
	w.Header().Set("X-Correlation-ID", corr)
	r = r.WithContext(context.WithValue(r.Context(), correlationCtxKey{}, corr))
	h, pattern := g.mux.Handler(r)
	if isRedirect(h) {
		pattern = ""
	}
	g.handler.ServeHTTP(w, withRoute(r, pattern))
}

// route serves a request ServeHTTP has routed, under its server-side
// deadline: QueryTimeout for a query, CommandTimeout for a command (an
// event stream bounds only its first read). What the mux answers itself
// (404, 405 with Allow, redirects) becomes a problem (muxProblem).
func (g *Gateway) route(w http.ResponseWriter, r *http.Request) {
	pattern := routeOf(r)
	if pattern == routeUnmatched {
		h, _ := g.mux.Handler(r)
		muxProblem(w, r, h)
		return
	}
	method, _, _ := strings.Cut(pattern, " ")
	d := g.limits.CommandTimeout
	if method == http.MethodGet || method == http.MethodHead {
		d = g.limits.QueryTimeout
	}
	r, ok := g.authorize(w, r, pattern)
	if !ok || !g.admit(w, r, pattern) {
		return
	}
	if pattern != routeEvents {
		var cancel context.CancelFunc
		r, cancel = withDeadline(r, d, routeDependency(pattern))
		defer cancel()
	}
	g.inner.ServeHTTP(w, r)
}

// routeEvents is the event stream's route, which has no overall deadline.
const routeEvents = "GET /products/{id}/events"

type correlationCtxKey struct{}

// meta derives a command's metadata from the request: the correlation id
// ServeHTTP settled, the traceparent of the request's span (withTracing)
// and the idempotency key.
func meta(r *http.Request) command.Meta {
	corr, _ := r.Context().Value(correlationCtxKey{}).(string)
	m := command.Meta{CorrelationID: corr, CausationID: corr, TraceParent: tracing.Parent(r.Context(), r.Header.Get(tracing.Header))}
	if k := idempotencyKey(r); k != nil {
		// Keys are the caller's own: another caller's same key is
		// another key, which it can neither block nor read.
		m.Idempotency = &command.IdempotencyKey{Key: scope(r) + " " + k.Key, Hash: k.Hash}
	}
	return m
}

// dispatch sends cmd through the command bus and answers with its result
// or its problem.
func (g *Gateway) dispatch(w http.ResponseWriter, r *http.Request, cmd command.Command) {
	res, err := g.d.Commands.Dispatch(r.Context(), meta(r), cmd)
	if err != nil {
		g.countRefused(err)
		writeError(w, r, g.log, err)
		return
	}
	if res.Location != "" {
		w.Header().Set("Location", res.Location)
	}
	if res.Replayed {
		w.Header().Set(headerReplayed, "true")
	}
	if res.Status == http.StatusNoContent {
		w.WriteHeader(res.Status)
		return
	}
	writeJSON(w, res.Status, res.Body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) { Healthz(g.d.Checks)(w, r) }

// Healthz answers GET /healthz, kept for compatibility (clients and
// scripts written before /livez and /readyz): it is an alias of Readyz,
// the same checks and the same answers. New probes should ask /livez for
// liveness and /readyz for readiness. Instances without the gateway serve
// it too.
func Healthz(checks []Check) http.HandlerFunc { return Readyz(checks) }

// pathID returns the {id} of the path. An id this shop could not have
// issued (not a UUID) is answered like an unknown one: 404, and false.
func pathID(w http.ResponseWriter, r *http.Request, what string) (string, bool) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no "+what+" "+id)
		return "", false
	}
	return id, true
}

type signUpRequest struct {
	Email    *string `json:"email"`
	Name     *string `json:"name"`
	Password *string `json:"password"`
}

func (g *Gateway) signUp(w http.ResponseWriter, r *http.Request) {
	var req signUpRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"email", req.Email != nil}, field{"name", req.Name != nil}, field{"password", req.Password != nil}) {
		return
	}
	g.dispatch(w, r, customers.SignUp{CustomerID: newID(), Email: *req.Email, Name: *req.Name, Password: password.Plain(*req.Password)})
}

// eraseCustomer erases a customer's personal data: the customer
// themselves, or staff (204; again 204). Another customer is 403.
func (g *Gateway) eraseCustomer(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "customer")
	if !ok {
		return
	}
	if _, ok := actingCustomer(w, r, &id, "id"); !ok {
		return
	}
	g.dispatch(w, r, customers.Erase{CustomerID: id, At: time.Now()})
}

// newID is the id of a new aggregate: a UUIDv7, so ids sort by creation.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

type registerProductRequest struct {
	Title      *string `json:"title"`
	PriceCents *int64  `json:"price_cents"`
	Quantity   *int64  `json:"quantity"`
	Photo      *string `json:"photo"`
}

func (g *Gateway) registerProduct(w http.ResponseWriter, r *http.Request) {
	var req registerProductRequest
	if !decodeJSON(w, r, &req) || !required(w, r,
		field{"title", req.Title != nil}, field{"price_cents", req.PriceCents != nil}, field{"quantity", req.Quantity != nil}) {
		return
	}
	cmd := catalog.RegisterProduct{ProductID: newID(), Title: *req.Title, PriceCents: *req.PriceCents, Quantity: *req.Quantity}
	if req.Photo != nil {
		cmd.Photo = *req.Photo
	}
	g.dispatch(w, r, cmd)
}

type restockRequest struct {
	Quantity *int64 `json:"quantity"`
}

func (g *Gateway) restockProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "product")
	if !ok {
		return
	}
	var req restockRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"quantity", req.Quantity != nil}) {
		return
	}
	g.dispatch(w, r, catalog.RestockProduct{ProductID: id, Quantity: *req.Quantity})
}

type addReviewRequest struct {
	CustomerID *string `json:"customer_id"`
	Rating     *int    `json:"rating"`
	Comment    *string `json:"comment"`
}

func (g *Gateway) addReview(w http.ResponseWriter, r *http.Request) {
	productID, ok := pathID(w, r, "product")
	if !ok {
		return
	}
	var req addReviewRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"rating", req.Rating != nil}) {
		return
	}
	customerID, ok := actingCustomer(w, r, req.CustomerID, "customer_id")
	if !ok {
		return
	}
	cmd := reviews.AddReview{ReviewID: newID(), ProductID: productID, CustomerID: customerID, Rating: *req.Rating}
	if req.Comment != nil {
		cmd.Comment = *req.Comment
	}
	g.dispatch(w, r, cmd)
}

type cartItemRequest struct {
	ProductID  *string `json:"product_id"`
	CustomerID *string `json:"customer_id"`
	Quantity   *int64  `json:"quantity"`
}

func (g *Gateway) addToCart(w http.ResponseWriter, r *http.Request) {
	var req cartItemRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"product_id", req.ProductID != nil}, field{"quantity", req.Quantity != nil}) {
		return
	}
	customerID, ok := actingCustomer(w, r, req.CustomerID, "customer_id")
	if !ok {
		return
	}
	g.dispatch(w, r, carts.AddItem{CustomerID: customerID, ProductID: *req.ProductID, Quantity: *req.Quantity})
}

func (g *Gateway) removeFromCart(w http.ResponseWriter, r *http.Request) {
	customerID, product := r.PathValue("customer_id"), r.PathValue("product_id")
	if uuid.Validate(customerID) != nil || uuid.Validate(product) != nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no product "+product+" in the cart of "+customerID)
		return
	}
	if _, ok := actingCustomer(w, r, &customerID, "customer_id"); !ok {
		return
	}
	g.dispatch(w, r, carts.RemoveItem{CustomerID: customerID, ProductID: product})
}

type placeOrderRequest struct {
	CustomerID    *string            `json:"customer_id"`
	PaymentMethod *string            `json:"payment_method"`
	Items         []orderItemRequest `json:"items"`
}

type orderItemRequest struct {
	ProductID *string `json:"product_id"`
	Quantity  *int64  `json:"quantity"`
}

func (g *Gateway) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req placeOrderRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"payment_method", req.PaymentMethod != nil}) {
		return
	}
	customerID, ok := actingCustomer(w, r, req.CustomerID, "customer_id")
	if !ok {
		return
	}
	cmd := orders.PlaceOrder{OrderID: newID(), CustomerID: customerID, PaymentMethod: *req.PaymentMethod}
	for i, it := range req.Items {
		if !required(w, r, field{fmt.Sprintf("items[%d].product_id", i), it.ProductID != nil}, field{fmt.Sprintf("items[%d].quantity", i), it.Quantity != nil}) {
			return
		}
		cmd.Items = append(cmd.Items, orders.Item{ProductID: *it.ProductID, Quantity: *it.Quantity})
	}
	g.dispatch(w, r, cmd)
}

// EndStreams ends every event stream, open or opened later: register it
// with http.Server.RegisterOnShutdown, so that a shutdown waits for the
// requests in flight and not for streams that never end by themselves.
func (g *Gateway) EndStreams() { g.endOnce.Do(func() { close(g.ending) }) }
