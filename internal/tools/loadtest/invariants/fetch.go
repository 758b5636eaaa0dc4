package invariants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"shopstream/internal/devinfra/embedded/psp"
)

// errNotFound is a 404: a definitive answer, not retried.
var errNotFound = errors.New("404 not found")

// getAttempts bounds the tries of one read: a gateway under load may shed
// it (429) or fail it for a moment (5xx, a reset connection).
const getAttempts = 5

// getJSON GETs u and decodes its JSON body into v, retrying with backoff
// on 429, 5xx and transport errors.
func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	var last error
	for attempt := range getAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		retry, err := getOnce(ctx, hc, u, v)
		if err == nil || !retry {
			return err
		}
		last = err
	}
	return fmt.Errorf("%d attempts: %w", getAttempts, last)
}

func getOnce(ctx context.Context, hc *http.Client, u string, v any) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case err != nil:
		return true, err
	case resp.StatusCode == http.StatusNotFound:
		return false, errNotFound
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("%s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("malformed answer: %w", err)
	}
	return false, nil
}

// each runs fn for every id, Concurrency at a time, and returns the
// results in the order of ids.
func each[T any](ids []string, fn func(id string) T) []T {
	out := make([]T, len(ids))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(Concurrency, len(ids)) {
		wg.Go(func() {
			for i := range work {
				out[i] = fn(ids[i])
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

// orderJSON is the part of GET /orders/{id} (internal/edge/gateway/queries.go,
// orderResponse) that I6 reads.
type orderJSON struct {
	Status       string  `json:"status"`
	CancelReason *string `json:"cancel_reason"`
	Invoice      *struct {
		EmailedAt *time.Time `json:"emailed_at"`
	} `json:"invoice"`
}

// readOrders reads every order from the gateway.
func readOrders(ctx context.Context, hc *http.Client, base string, ids []string) []orderRead {
	base = strings.TrimRight(base, "/")
	return each(ids, func(id string) orderRead {
		var o orderJSON
		if err := getJSON(ctx, hc, base+"/orders/"+url.PathEscape(id), &o); err != nil {
			if errors.Is(err, errNotFound) {
				return orderRead{ID: id, Err: "not in the orders read model (GET /orders/{id}: 404)"}
			}
			return orderRead{ID: id, Err: "GET /orders/{id}: " + err.Error()}
		}
		r := orderRead{ID: id, Status: o.Status, CancelReason: o.CancelReason}
		if o.Invoice != nil {
			r.EmailedAt = o.Invoice.EmailedAt
		}
		return r
	})
}

// productJSON is the part of GET /products/{id} that I5 reads.
type productJSON struct {
	Stock *int64 `json:"stock"`
}

// readProducts reads every product's stock from the gateway.
func readProducts(ctx context.Context, hc *http.Client, base string, ids []string) []productRead {
	base = strings.TrimRight(base, "/")
	return each(ids, func(id string) productRead {
		var p productJSON
		err := getJSON(ctx, hc, base+"/products/"+url.PathEscape(id), &p)
		switch {
		case errors.Is(err, errNotFound):
			return productRead{ID: id, Err: "not in the products read model (GET /products/{id}: 404)"}
		case err != nil:
			return productRead{ID: id, Err: "GET /products/{id}: " + err.Error()}
		case p.Stock == nil:
			return productRead{ID: id, Err: "GET /products/{id}: no stock field"}
		}
		return productRead{ID: id, Stock: *p.Stock}
	})
}

// listCharges lists the charges of each simulator whose URL is known, by
// payment method.
func listCharges(ctx context.Context, hc *http.Client, cardURL, sepaURL string) (map[string][]psp.Charge, error) {
	out := map[string][]psp.Charge{}
	for _, s := range []struct{ method, url string }{{methodCard, cardURL}, {methodSepa, sepaURL}} {
		if s.url == "" {
			continue
		}
		var list struct {
			Charges []psp.Charge `json:"charges"`
		}
		if err := getJSON(ctx, hc, strings.TrimRight(s.url, "/")+"/charges", &list); err != nil {
			return nil, fmt.Errorf("list the %s's charges (GET %s/charges): %w", simulatorName(s.method), s.url, err)
		}
		out[s.method] = list.Charges
	}
	return out, nil
}
