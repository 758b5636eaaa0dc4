package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"shopstream/internal/edge/sse"
	"shopstream/internal/edge/stockwatch"
)

// fragment is what the page's script puts in place: the HTML of element
// ID, or inserted first in it (Prepend).
type fragment struct {
	ID      string `json:"id"`
	HTML    string `json:"html"`
	Prepend bool   `json:"prepend,omitempty"`
	Seq     int64  `json:"seq"`
}

// live names, per view, the template of its live part and its data.
var live = map[string]string{"pipeline": "pipeline-live", "email": "email-live", "replays": "replays-live", "loadtest": "loadtest-live"}

// liveFragment renders view's live part for smp, once per sample and view
// however many pages watch it.
func (c *Console) liveFragment(r *http.Request, view string, smp Sample) (string, error) {
	c.mu.Lock()
	if f, ok := c.rendered[view]; ok && f.at.Equal(smp.At) {
		c.mu.Unlock()
		return f.html, nil
	}
	c.mu.Unlock()
	var data any = smp
	switch view {
	case "replays":
		data, _ = c.replays(r)
	case "loadtest":
		data, _ = c.loadtest(r)
	}
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, live[view], data); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.rendered[view] = rendered{at: smp.At, html: buf.String()}
	c.mu.Unlock()
	return buf.String(), nil
}

// rendered is a view's live part as rendered for the sample taken at at.
type rendered struct {
	at   time.Time
	html string
}

// events streams a view's live part once a sample, and on the orders
// view the stock notices as they come.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	view := r.URL.Query().Get("view")
	stream, err := sse.Start(w)
	if err != nil {
		c.cfg.Logger.Error("console: event stream", "err", err)
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	send := func(f fragment) bool {
		c.seqMu.Lock()
		c.seq++
		f.Seq = c.seq
		c.seqMu.Unlock()
		b, _ := json.Marshal(f)
		return stream.Event("fragment", b) == nil
	}
	var notices <-chan stockwatch.Notice
	if view == "orders" && c.cfg.SoldOut != nil {
		notices = c.cfg.SoldOut(ctx)
	}
	samples := c.smp.subscribe(ctx)
	keepAlive := time.NewTicker(sse.KeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			if stream.KeepAlive() != nil {
				return
			}
		case n := <-notices:
			var buf bytes.Buffer
			if err := c.tmpl.ExecuteTemplate(&buf, "notice", map[string]any{"Notice": n, "At": time.Now()}); err != nil || !send(fragment{ID: "notices", HTML: buf.String(), Prepend: true}) {
				return
			}
		case smp := <-samples:
			if _, ok := live[view]; !ok {
				continue
			}
			html, err := c.liveFragment(r, view, smp)
			if err != nil {
				c.cfg.Logger.Error("console: render", "view", view, "err", err)
				return
			}
			if !send(fragment{ID: "live", HTML: html}) {
				return
			}
		}
	}
}
