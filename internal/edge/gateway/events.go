package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"shopstream/internal/edge/sse"
)

type stockEvent struct {
	ProductID string `json:"product_id"`
	Stock     int64  `json:"stock"`
	SoldOut   bool   `json:"sold_out"`
}

// productEvents streams a product's stock news as server-sent events: first
// `stock` with the read model's current stock, then `sold_out` the moment
// its last unit is reserved and `restocked` when it comes back, until the
// client leaves.
func (g *Gateway) productEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "product")
	if !ok {
		return
	}
	if !g.enterStream(w, r) {
		return
	}
	defer g.leaveStream()
	if g.d.Stock == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "this instance does not stream events")
		return
	}
	notices := g.d.Stock.Watch(r.Context(), id)                    // before reading: no notice falls between
	rq, cancel := withDeadline(r, g.limits.QueryTimeout, DepMongo) // the first read only
	v, ok := g.product(w, rq, id)
	cancel()
	if !ok {
		return
	}
	stream, err := sse.Start(w)
	if err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "this instance does not stream events")
		return
	}
	send := func(event string, data any) bool {
		b, _ := json.Marshal(data)
		return stream.Event(event, b) == nil
	}
	if !send("stock", stockEvent{ProductID: id, Stock: v.Stock, SoldOut: v.SoldOut}) {
		return
	}
	tick := time.NewTicker(sse.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-g.ending:
			return
		case n := <-notices:
			if !send(n.Kind, stockEvent{ProductID: id, Stock: n.Available, SoldOut: n.Kind == "sold_out"}) {
				return
			}
		case <-tick.C:
			if stream.KeepAlive() != nil {
				return
			}
		}
	}
}
