package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	productsrm "shopstream/projectors/products"
)

// `shop replay` against a running `shop dev` with a few thousand events:
// GET /products/{id} is polled in a loop while the products read model is
// rebuilt and switched, and no read fails; --verify then finds both read
// models equal to the log.
func TestReplayAgainstShopDev(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and running the shop binary")
	}
	bin := buildShop(t)
	dir := t.TempDir()
	p := startDev(t, bin, dir)
	post := func(path, body string) (map[string]any, error) {
		resp, err := p.client.Post(p.base+path, "application/json", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("POST %s: %d %v", path, resp.StatusCode, m)
		}
		return m, nil
	}
	customer, err := post("/customers", `{"email": "fan@example.org", "name": "Fan", "password": "a password for the tests"}`)
	if err != nil {
		t.Fatal(err)
	}
	const products, reviews = 100, 20
	ids := make([]string, products)
	var wg sync.WaitGroup
	var failedWrite atomic.Value
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				m, err := post("/products", fmt.Sprintf(`{"title": "P%03d", "price_cents": 990, "quantity": 10}`, i))
				if err != nil {
					failedWrite.Store(err)
					continue
				}
				ids[i] = m["id"].(string)
				for r := range reviews {
					if _, err := post("/products/"+ids[i]+"/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": %d}`, customer["id"], 1+r%5)); err != nil {
						failedWrite.Store(err)
					}
				}
			}
		})
	}
	for i := range products {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, _ := failedWrite.Load().(error); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		p.waitProduct(t, id)
	}
	for i := range 20 {
		if _, err := post("/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": %q, "items": [{"product_id": %q, "quantity": 1}]}`,
			customer["id"], []string{"card", "sepa"}[i%2], ids[i])); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var lastFailure atomic.Value
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := ids[rand.IntN(len(ids))]
			resp, err := p.client.Get(p.base + "/products/" + id)
			reads.Add(1)
			if err != nil {
				failures.Add(1)
				lastFailure.Store(err.Error())
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failures.Add(1)
				lastFailure.Store(fmt.Sprintf("GET /products/%s: %d", id, resp.StatusCode))
			}
		}
	})
	out, progress, err := runShop(t, nil, "replay", "products", "--admin-target", p.admin, "--drop-after", "1s")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("shop replay products: %v\n%s\n%s", err, out, progress)
	}
	t.Logf("%s(%d reads during the replay, %d failed)", out, reads.Load(), failures.Load())
	if failures.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads failed, last: %v", failures.Load(), reads.Load(), lastFailure.Load())
	}
	if !strings.Contains(out, fmt.Sprintf("%d documents; readers switched from %s", products, productsrm.Projection().Collection())) {
		t.Fatalf("replay said %q", out)
	}
	if !strings.Contains(progress, "replay products") || !strings.Contains(progress, "events/s") {
		t.Fatalf("no progress shown on stderr: %q", progress)
	}
	for _, name := range []string{"products", "orders"} {
		out, _, err := runShop(t, nil, "replay", "--verify", "--data-dir", dir, name)
		if err != nil || !strings.Contains(out, ": 0 differences") {
			t.Fatalf("shop replay --verify %s: %v\n%s", name, err, out)
		}
		t.Logf("%s", out)
	}
}
