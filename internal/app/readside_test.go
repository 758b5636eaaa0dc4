package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/lag"
	"shopstream/internal/platform/outbox"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/replay"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// send posts body to path from any goroutine and returns the status and
// the decoded answer.
func (s *shop) send(path, body string) (int, map[string]any, error) {
	resp, err := s.client.Post(s.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// get reads path into v from any goroutine; it returns the status.
func (s *shop) get(path string, v any) (int, error) { return s.getAt(s.base+path, v) }

// getAt reads url (the admin listener's, say) into v.
func (s *shop) getAt(url string, v any) (int, error) {
	resp, err := s.client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// groupLag is a consumer group's lag as GET /lag shows it (-1: absent).
func (s *shop) groupLag(group string) int64 {
	s.t.Helper()
	var l struct{ Groups []lag.Group }
	if code, err := s.getAt(s.admin+"/lag", &l); code != http.StatusOK || err != nil {
		s.t.Fatalf("GET /lag: %d %v", code, err)
	}
	for _, g := range l.Groups {
		if g.Group == group {
			return g.Lag
		}
	}
	return -1
}

// waitQuiet waits until the shop has nothing left to do: the outbox is
// empty and no consumer group lags, twice in a row (a processor may
// still be about to append an event when the lag reads 0 once).
func (s *shop) waitQuiet() {
	s.t.Helper()
	pool := s.pool()
	deadline := time.Now().Add(60 * time.Second)
	for quiet := 0; quiet < 2; {
		var l struct{ Groups []lag.Group }
		if code, err := s.getAt(s.admin+"/lag", &l); code != http.StatusOK || err != nil {
			s.t.Fatalf("GET /lag: %d %v", code, err)
		}
		busy, _ := outbox.Pending(context.Background(), pool)
		for _, g := range l.Groups {
			busy += g.Lag
		}
		if busy == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("still busy after 60 s: outbox and lag %d, groups %+v", busy, l.Groups)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replayConfig reaches the shop's Kafka, registry and MongoDB.
func (s *shop) replayConfig() replay.Config {
	s.t.Helper()
	e := s.stack.Endpoints
	cat, err := schemas.Load()
	if err != nil {
		s.t.Fatal(err)
	}
	rc, err := sr.NewClient(sr.URLs(e.RegistryURL))
	if err != nil {
		s.t.Fatal(err)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return replay.Config{Kafka: []kgo.Opt{kgo.SeedBrokers(e.Brokers...)}, Serde: eventlog.NewSerde(rc, cat),
		Store: docstore.New(mc.Database("shop")), Logger: slog.New(slog.DiscardHandler)}
}

// seedCatalog registers n products, each with reviews reviews, with 8
// concurrent clients; it returns the product ids.
func (s *shop) seedCatalog(customer string, n, reviews int) []string {
	s.t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n*(reviews+1))
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				code, m, err := s.send("/products", fmt.Sprintf(`{"title": "P%03d", "price_cents": %d, "quantity": 50}`, i, 100+i))
				if err != nil || code != http.StatusCreated {
					errs <- fmt.Errorf("product %d: %d %v %v", i, code, m, err)
					continue
				}
				ids[i] = m["id"].(string)
				for r := range reviews {
					if code, m, err := s.send("/products/"+ids[i]+"/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": %d}`, customer, 1+r%5)); err != nil || code != http.StatusCreated {
						errs <- fmt.Errorf("review: %d %v %v", code, m, err)
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
	return ids
}

// The products read model is rebuilt from the log while readers poll it
// and writers add reviews: no read fails or misses a product during the
// switch, no review written meanwhile is lost, the old collection is
// dropped, and --verify then finds the read models equal to the log.
func TestReplayWhileServing(t *testing.T) {
	s := startShop(t, t.TempDir())
	customer := s.customer()
	ids := s.seedCatalog(customer, 40, 20)
	for i := range 10 {
		if code, body := s.order(customer, []string{"card", "sepa"}[i%2], ids[i], 1); code != http.StatusAccepted {
			t.Fatalf("order: %d %v", code, body)
		}
	}
	s.waitQuiet()

	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var failed sync.Map
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[rand.IntN(len(ids))]
				code, err := s.get("/products/"+id, nil)
				reads.Add(1)
				if code != http.StatusOK || err != nil {
					failures.Add(1)
					failed.Store(fmt.Sprintf("GET /products/%s: %d %v", id, code, err), true)
				}
				if i%10 != 0 {
					continue
				}
				var page struct{ Items []any }
				code, err = s.get("/products?limit=100", &page)
				reads.Add(1)
				if code != http.StatusOK || err != nil || len(page.Items) != len(ids) {
					failures.Add(1)
					failed.Store(fmt.Sprintf("GET /products: %d %v, %d products", code, err, len(page.Items)), true)
				}
			}
		})
	}
	reviewed := map[string]int{}
	var mu sync.Mutex
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := ids[rand.IntN(len(ids))]
			if code, _, err := s.send("/products/"+id+"/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": 5}`, customer)); err == nil && code == http.StatusCreated {
				mu.Lock()
				reviewed[id]++
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	cfg := s.replayConfig()
	cfg.DropAfter = 1500 * time.Millisecond
	var phases []string // each phase OnProgress saw, in order
	var lastEvents int64
	cfg.OnProgress = func(p replay.Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if p.Events < lastEvents {
			t.Errorf("progress went back from %d to %d events", lastEvents, p.Events)
		}
		lastEvents = p.Events
	}
	report, err := replay.Rebuild(context.Background(), products.Projection(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnProgress = nil // the verifications below start from 0 again
	if want := []string{replay.PhaseRebuilding, replay.PhaseSwitching, replay.PhaseSwitched, replay.PhaseDone}; !slices.Equal(phases, want) || lastEvents != report.Events {
		t.Errorf("progress: phases %v, last %d events; want %v, ending at the report's %d", phases, lastEvents, want, report.Events)
	}
	time.Sleep(500 * time.Millisecond) // reads and writes go on after the drop
	close(stop)
	wg.Wait()
	t.Logf("replayed %d events into %s in %s (%.0f events/s), %d documents; %d reads during the rebuild, %d failed",
		report.Events, report.To, report.Elapsed.Round(time.Millisecond), report.Rate(), report.Documents, reads.Load(), failures.Load())
	failed.Range(func(k, _ any) bool { t.Errorf("failed read: %s", k); return true })
	if failures.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads failed", failures.Load(), reads.Load())
	}
	if report.From != products.Projection().Collection() || report.To == report.From || report.Documents != int64(len(ids)) {
		t.Fatalf("report %+v", report)
	}
	db := cfg.Store.Database()
	if target, err := runner.NewAliases(db).Resolve(context.Background(), products.Projection().Collection()); err != nil || target != report.To {
		t.Fatalf("alias points at %q (%v), want %q", target, err, report.To)
	}
	names, err := db.ListCollectionNames(context.Background(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, report.From) {
		t.Fatalf("the old collection %s is still there: %v", report.From, names)
	}

	// Reviews written during the rebuild are all in the new collection.
	s.waitQuiet()
	total := 0
	for id, n := range reviewed {
		var p struct{ Rating struct{ Count int } }
		if code, err := s.get("/products/"+id, &p); code != http.StatusOK || err != nil {
			t.Fatalf("GET /products/%s: %d %v", id, code, err)
		}
		if p.Rating.Count != 20+n {
			t.Errorf("product %s: %d reviews, want %d (20 before, %d during the rebuild)", id, p.Rating.Count, 20+n, n)
		}
		total += n
	}
	t.Logf("%d reviews written during the rebuild, all readable", total)
	if total == 0 {
		t.Fatal("no review was written during the rebuild: the test proved nothing about them")
	}

	for name, verify := range map[string]func() (replay.Verification, error){
		"products": func() (replay.Verification, error) {
			return replay.Verify(context.Background(), products.Projection(), cfg)
		},
		"orders": func() (replay.Verification, error) {
			return replay.Verify(context.Background(), orderviews.Projection(), cfg)
		},
	} {
		v, err := verify()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verify %s: %d documents of %s against %d events: %d differences", name, v.Compared, v.Live, v.Events, v.Differences)
		if v.Differences != 0 || v.Compared == 0 {
			t.Errorf("verify %s: %d differences of %d documents: %+v", name, v.Differences, v.Compared, v.Examples)
		}
	}
}

// While a projector is down (a spike it cannot keep up with), the query
// routes keep answering from the read model as it stands, GET /lag shows
// the projector's group behind by exactly the records it has not folded,
// and once it runs again the lag drains and the reads catch up.
func TestReadsAnswerWhileProjectorsLag(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, dir)
	customer := s.customer()
	ids := s.seedCatalog(customer, 5, 0)
	group := products.Projection().Group()
	s.waitQuiet()
	s.stop()

	without := slices.DeleteFunc(app.Components(), func(c string) bool { return c == app.ProjectorProducts || c == app.Billing })
	s = startShopOn(t, devstack.Config{Dir: dir}, func(c *app.Config) { c.Components = without })
	// GET /lag knows every component's group from the component table,
	// those of the components this instance does not run included.
	for g := range app.Groups() {
		if s.groupLag(g) < 0 {
			t.Errorf("GET /lag of an instance without %s and %s does not show group %s", app.ProjectorProducts, app.Billing, g)
		}
	}
	const spike = 120
	for i := range spike {
		if code, m, err := s.send("/products/"+ids[i%len(ids)]+"/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": 4}`, customer)); err != nil || code != http.StatusCreated {
			t.Fatalf("review: %d %v %v", code, m, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.groupLag(group) != spike && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // the relay publishes the reviews
	}
	if got := s.groupLag(group); got != spike {
		t.Fatalf("GET /lag shows %s behind by %d, want %d", group, got, spike)
	}
	for _, id := range ids {
		var p struct{ Rating struct{ Count int } }
		if code, err := s.get("/products/"+id, &p); code != http.StatusOK || err != nil || p.Rating.Count != 0 {
			t.Fatalf("GET /products/%s while its projector lags: %d %v, %d reviews", id, code, err, p.Rating.Count)
		}
	}
	t.Logf("projector down: %s lags by %d, every product still answers 200", group, spike)
	s.stop()

	s = startShop(t, dir)
	began := time.Now()
	s.waitQuiet()
	for _, id := range ids {
		s.waitProduct(id, func(p map[string]any) bool { return p["rating"].(map[string]any)["count"].(float64) == spike/5 })
	}
	t.Logf("projector back: lag drained and reviews readable in %s", time.Since(began).Round(time.Millisecond))
}
