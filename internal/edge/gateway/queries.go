package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
)

// Page sizes of the list routes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// productResponse is the JSON of GET /products/{id}, and of each product
// of GET /products.
type productResponse struct {
	ID         string           `json:"id"`
	Title      string           `json:"title"`
	PriceCents int64            `json:"price_cents"`
	Currency   string           `json:"currency"`
	Photo      string           `json:"photo,omitempty"`
	Stock      int64            `json:"stock"`
	SoldOut    bool             `json:"sold_out"`
	Rating     ratingResponse   `json:"rating"`
	Reviews    []reviewResponse `json:"reviews"`
}

type ratingResponse struct {
	Average *float64 `json:"average"` // null without reviews
	Count   int64    `json:"count"`
}

type reviewResponse struct {
	CustomerID string    `json:"customer_id"`
	Rating     int32     `json:"rating"`
	Comment    string    `json:"comment"`
	At         time.Time `json:"at"`
}

func newProductResponse(id string, v products.View) productResponse {
	resp := productResponse{ID: id, Title: v.Title, PriceCents: v.PriceCents, Currency: v.Currency, Photo: v.Photo,
		Stock: v.Stock, SoldOut: v.SoldOut, Rating: ratingResponse{Average: v.Average(), Count: v.RatingCount},
		Reviews: make([]reviewResponse, 0, len(v.Reviews))}
	for _, rv := range v.Reviews {
		resp.Reviews = append(resp.Reviews, reviewResponse{CustomerID: rv.CustomerID, Rating: rv.Rating, Comment: rv.Comment, At: rv.At})
	}
	return resp
}

// product reads a product from the read model; when it cannot, it has
// answered (404, or the error) and returns false.
func (g *Gateway) product(w http.ResponseWriter, r *http.Request, id string) (products.View, bool) {
	v, found, err := g.d.Products.Get(r.Context(), id)
	if err != nil {
		writeError(w, r, g.log, err)
		return v, false
	}
	if !found {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no product "+id)
	}
	return v, found
}

func (g *Gateway) getProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "product")
	if !ok {
		return
	}
	v, ok := g.product(w, r, id)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, newProductResponse(id, v))
}

// productPage is the JSON of GET /products: a page in listing order (the
// order of registration, see projectors/listing); next is the
// cursor of the following page (pass it as after: the id of the page's
// last product), null on the last.
type productPage struct {
	Items []productResponse `json:"items"`
	Next  *string           `json:"next"`
}

// pageSize reads the limit query parameter; when it is malformed it has
// answered 400 naming it and returns false.
func pageSize(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultPageSize, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		badQuery(w, r, "limit", "must be an integer from 1 to "+strconv.Itoa(MaxPageSize))
		return 0, false
	}
	return n, true
}

// badQuery answers 400 naming the malformed query parameter.
func badQuery(w http.ResponseWriter, r *http.Request, param, reason string) {
	writeProblem(w, r, http.StatusBadRequest, "malformed", param+" "+reason, FieldProblem{Field: param, Reason: reason})
}

func (g *Gateway) listProducts(w http.ResponseWriter, r *http.Request) {
	limit, ok := pageSize(w, r)
	if !ok {
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" && uuid.Validate(after) != nil {
		badQuery(w, r, "after", "must be a product id (a UUID): the next of the previous page")
		return
	}
	page, more, err := g.d.Products.Page(r.Context(), after, limit)
	if errors.Is(err, products.ErrNotListed) {
		badQuery(w, r, "after", "must be the next of a previous page: no listed product has this id")
		return
	}
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	resp := productPage{Items: make([]productResponse, len(page))}
	for i, p := range page {
		resp.Items[i] = newProductResponse(p.ID, p.View)
	}
	if more {
		resp.Next = &page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

// orderResponse is the JSON of GET /orders/{id}, and of each order of GET
// /customers/{id}/orders. Item titles come from the products read model
// (API composition): the product's current title, null when the product
// is not readable.
type orderResponse struct {
	ID           string              `json:"id"`
	CustomerID   string              `json:"customer_id"`
	Status       string              `json:"status"`
	CancelReason *string             `json:"cancel_reason"`
	PlacedAt     time.Time           `json:"placed_at"`
	Items        []orderItemResponse `json:"items"`
	TotalCents   int64               `json:"total_cents"`
	Payment      paymentResponse     `json:"payment"`
	Invoice      *invoiceResponse    `json:"invoice"`
	History      []statusChange      `json:"history"`
}

type orderItemResponse struct {
	ProductID      string  `json:"product_id"`
	Title          *string `json:"title"`
	Quantity       int32   `json:"quantity"`
	UnitPriceCents int64   `json:"unit_price_cents"`
}

type paymentResponse struct {
	Method    string `json:"method"`
	Status    string `json:"status"`
	Reference string `json:"reference,omitempty"`
	// Deadline is when the order is cancelled (payment_timeout) if the
	// payment has no outcome by then; null once it has one.
	Deadline *time.Time `json:"deadline"`
}

type invoiceResponse struct {
	Number    string     `json:"number"`
	IssuedAt  time.Time  `json:"issued_at"`
	EmailedAt *time.Time `json:"emailed_at"`
}

type statusChange struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// customerOrders is the JSON of GET /customers/{id}/orders.
type customerOrders struct {
	Items []orderResponse `json:"items"`
}

// orderResponses composes orders with their products' current titles: one
// read of each read model whatever the number of orders.
func (g *Gateway) orderResponses(r *http.Request, orders []orderviews.Order) ([]orderResponse, error) {
	var ids []string
	for _, o := range orders {
		for _, it := range o.View.Items {
			ids = append(ids, it.ProductID)
		}
	}
	titles := map[string]products.View{}
	if len(ids) > 0 {
		var err error
		if titles, err = g.d.Products.Many(r.Context(), ids); err != nil {
			return nil, err
		}
	}
	out := make([]orderResponse, len(orders))
	for i, o := range orders {
		v, history := o.View, o.View.History()
		resp := orderResponse{ID: o.ID, CustomerID: v.CustomerID, Status: v.Status(), PlacedAt: v.PlacedAt, TotalCents: v.TotalCents,
			Payment: paymentResponse{Method: v.PaymentMethod, Status: v.PaymentStatus, Reference: v.PaymentRef, Deadline: v.PaymentDeadline},
			Items:   make([]orderItemResponse, len(v.Items)), History: make([]statusChange, len(history))}
		if v.CancelReason != "" {
			resp.CancelReason = &v.CancelReason
		}
		for j, it := range v.Items {
			resp.Items[j] = orderItemResponse{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents}
			if p, ok := titles[it.ProductID]; ok {
				resp.Items[j].Title = &p.Title
			}
		}
		for j, c := range history {
			resp.History[j] = statusChange{Status: c.Status, At: c.At}
		}
		if v.Invoice != nil {
			resp.Invoice = &invoiceResponse{Number: v.Invoice.Number, IssuedAt: v.Invoice.IssuedAt, EmailedAt: v.Invoice.EmailedAt}
		}
		out[i] = resp
	}
	return out, nil
}

func (g *Gateway) getOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "order")
	if !ok {
		return
	}
	v, found, err := g.d.Orders.Get(r.Context(), id)
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	if !found || !mayRead(r, v.CustomerID) {
		// Another customer's order is answered as an unknown one: its
		// existence is not theirs to learn.
		writeProblem(w, r, http.StatusNotFound, "not-found", "no order "+id)
		return
	}
	resp, err := g.orderResponses(r, []orderviews.Order{{ID: id, View: v}})
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp[0])
}

func (g *Gateway) listCustomerOrders(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "customer")
	if !ok {
		return
	}
	if !mayRead(r, id) {
		writeProblem(w, r, http.StatusForbidden, "forbidden", "a customer reads only their own orders")
		return
	}
	limit, ok := pageSize(w, r)
	if !ok {
		return
	}
	orders, err := g.d.Orders.OfCustomer(r.Context(), id, limit)
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	items, err := g.orderResponses(r, orders)
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, customerOrders{Items: items})
}
