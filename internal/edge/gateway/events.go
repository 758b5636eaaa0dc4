package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// keepAlive is how often an idle event stream gets a comment line, so that
// proxies keep it open.
const keepAlive = 15 * time.Second

// streamWriteTimeout bounds each write of an event stream.
const streamWriteTimeout = 10 * time.Second

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
	flusher, canFlush := w.(http.Flusher)
	if g.d.Stock == nil || !canFlush {
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
	// The stream outlives the server's read and write timeouts: no read
	// deadline, and a write deadline per write, so that a client that
	// stopped reading is dropped.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data any) bool {
		b, _ := json.Marshal(data)
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		flusher.Flush()
		return err == nil
	}
	if !send("stock", stockEvent{ProductID: id, Stock: v.Stock, SoldOut: v.SoldOut}) {
		return
	}
	tick := time.NewTicker(keepAlive)
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
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
