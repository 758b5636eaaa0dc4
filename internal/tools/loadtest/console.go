package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"shopstream/internal/edge/console"
)

// toConsole reports each second of the load to the console of the shop it
// loads (POST <admin>/console/loadtest, as staff), so that the console
// shows the run live. A report that fails is dropped: the console is a
// window on the run, never a brake on it.
func (c *client) toConsole(ctx context.Context, phase string, sec int, target float64, l Live) {
	if c.admin == "" || sec < 0 {
		return
	}
	s := console.LoadSecond{T: sec, Phase: phase, Target: target, Sent: l.Sent, OK: l.OK, Shed: l.Shed, Refused: l.Refused,
		Errors: l.Errors, P95: l.P95, Routes: map[string]console.RouteLive{}}
	for route, r := range l.Routes {
		s.Routes[route] = console.RouteLive{Count: r.Count, Shed: r.Shed, P95: r.P95}
	}
	body, err := json.Marshal(s)
	if err != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.admin+"/console/loadtest", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
}
