package console

import (
	"net/http"
	"strings"

	"shopstream/projectors/orderviews"
)

// OrderPage is an order looked up by id.
type OrderPage struct {
	ID      string
	Found   bool
	Order   orderviews.View
	History []orderviews.Change
	SoldOut bool // the page streams sold-out notices
}

func (c *Console) orders(r *http.Request) (any, error) {
	p := OrderPage{ID: strings.TrimSpace(r.URL.Query().Get("id")), SoldOut: c.cfg.SoldOut != nil}
	if p.ID == "" || c.cfg.Orders == nil {
		return p, nil
	}
	v, ok, err := c.cfg.Orders.Get(r.Context(), p.ID)
	if err != nil {
		return p, err
	}
	p.Found, p.Order = ok, v
	if ok {
		p.History = v.History()
	}
	return p, nil
}
