package app_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shopstream/internal/app"
)

// Both event streams, the API's GET /products/{id}/events and the admin
// listener's console (/console/events), outlive the servers' write
// timeout (8 s here): a sold-out pushed after it reaches the watcher, and
// the console's fragments keep coming.
func TestEventStreamsOutliveTheServersWriteTimeout(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) {
		// WriteTimeout = body + max(query, command) + 5 s = 8 s
		c.HTTPLimits.BodyTimeout, c.HTTPLimits.QueryTimeout, c.HTTPLimits.CommandTimeout = time.Second, time.Second, 2*time.Second
	})
	const writeTimeout = 8 * time.Second
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 1)
	s.waitProduct(product, func(map[string]any) bool { return true })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	type event struct {
		name string
		at   time.Time
	}
	var mu sync.Mutex
	var got []event
	var readers sync.WaitGroup
	watch := func(url string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		readers.Go(func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 4<<20)
			for sc.Scan() {
				if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
					mu.Lock()
					got = append(got, event{name, time.Now()})
					mu.Unlock()
				}
			}
		})
	}
	opened := time.Now()
	watch(s.base + "/products/" + product + "/events")
	watch(s.admin + "/console/events?view=pipeline")

	time.Sleep(writeTimeout + 2*time.Second)
	if code, body := s.order(customer, "card", product, 1); code != http.StatusAccepted {
		t.Fatalf("order: %d %v", code, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	late := func() (soldOut bool, fragments int) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range got {
			if e.at.Sub(opened) <= writeTimeout {
				continue
			}
			soldOut = soldOut || e.name == "sold_out"
			if e.name == "fragment" {
				fragments++
			}
		}
		return soldOut, fragments
	}
	for {
		soldOut, fragments := late()
		if soldOut && fragments >= 2 {
			t.Logf("after the %v write timeout: sold_out pushed, %d console fragments", writeTimeout, fragments)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the %v write timeout: sold_out pushed %v, %d console fragments (want 2 or more); every event: %v", writeTimeout, soldOut, fragments, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	readers.Wait()
}
