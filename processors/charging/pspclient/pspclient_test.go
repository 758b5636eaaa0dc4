package pspclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"shopstream/internal/devinfra/embedded/psp"
)

func simulator(t *testing.T, cfg psp.Config) *psp.Server {
	t.Helper()
	s, err := psp.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, s) })
	return s
}

func stop(t *testing.T, s *psp.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Error(err)
	}
}

func client(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.MinBackoff = max(cfg.MinBackoff, time.Millisecond)
	cfg.MaxBackoff = max(cfg.MaxBackoff, 20*time.Millisecond)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func order(id string) ChargeRequest {
	return ChargeRequest{OrderID: id, AmountCents: 8999, Currency: "EUR", Method: "card"}
}

func TestIdempotentReplay(t *testing.T) {
	sim := simulator(t, psp.Config{Latency: 50 * time.Millisecond})
	c := client(t, Config{BaseURL: sim.URL()})

	first, err := c.Charge(t.Context(), "evt-1", order("o-1"))
	if err != nil || first.Status != StatusSucceeded || first.ChargeID == "" || first.Replayed || first.Attempts != 1 {
		t.Fatalf("first charge %+v, %v", first, err)
	}
	again, err := c.Charge(t.Context(), "evt-1", order("o-1"))
	if err != nil || again.ChargeID != first.ChargeID || !again.Replayed {
		t.Fatalf("replay %+v, %v; want charge %s replayed", again, err, first.ChargeID)
	}

	// Concurrent calls with one key: the simulator holds the later ones
	// until the first is decided; all get one charge.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			r, err := c.Charge(t.Context(), "evt-2", order("o-2"))
			if err != nil {
				t.Error(err)
			}
			ids[i] = r.ChargeID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent charges with one key got ids %v", ids)
		}
	}
	if sim.ChargesFor("o-1") != 1 || sim.ChargesFor("o-2") != 1 || sim.Charges() != 2 {
		t.Fatalf("charges o-1 %d, o-2 %d, total %d; want 1, 1, 2", sim.ChargesFor("o-1"), sim.ChargesFor("o-2"), sim.Charges())
	}
}

func TestDeclineIsStablePerKeyAndNotRetried(t *testing.T) {
	sim := simulator(t, psp.Config{FailureRate: 1})
	c := client(t, Config{BaseURL: sim.URL()})
	for i := range 2 {
		res, err := c.Charge(t.Context(), "evt-d", order("o-d"))
		var de *DeclinedError
		if !errors.Is(err, ErrDeclined) || !errors.As(err, &de) || de.Reason != "card_declined" {
			t.Fatalf("call %d: err %v, want ErrDeclined with reason card_declined", i, err)
		}
		if res.Status != StatusDeclined || res.Reason != "card_declined" || res.Attempts != 1 || res.Replayed != (i == 1) || IsTransient(err) {
			t.Fatalf("call %d: result %+v", i, res)
		}
	}
	if st := sim.Stats(); st.Requests != 2 || st.Declines != 1 || st.Replays != 1 || st.Charges != 0 {
		t.Fatalf("simulator stats %+v: a decline was retried or re-decided", st)
	}

	// With a mixed rate each key keeps its first answer.
	mixed := simulator(t, psp.Config{FailureRate: 0.5, Seed: 7})
	mc := client(t, Config{BaseURL: mixed.URL()})
	for i := range 40 {
		key := fmt.Sprintf("evt-%d", i)
		a, errA := mc.Charge(t.Context(), key, order(key))
		b, errB := mc.Charge(t.Context(), key, order(key))
		if a.Status != b.Status || a.ChargeID != b.ChargeID || errors.Is(errA, ErrDeclined) != errors.Is(errB, ErrDeclined) {
			t.Fatalf("%s: %+v/%v then %+v/%v", key, a, errA, b, errB)
		}
	}
}

func TestRetryThroughTimeoutsChargesOnce(t *testing.T) {
	// Every first request is charged, then its answer is withheld past the
	// client's timeout: the retry with the same key must get the stored
	// answer, not a second charge.
	sim := simulator(t, psp.Config{TimeoutRate: 1})
	c := client(t, Config{BaseURL: sim.URL(), Timeout: 150 * time.Millisecond,
		Breaker: BreakerConfig{FailureThreshold: 100}}) // 10 concurrent timeouts must not trip it here
	var wg sync.WaitGroup
	results := make([]ChargeResult, 10)
	for i := range results {
		wg.Go(func() {
			var err error
			if results[i], err = c.Charge(t.Context(), fmt.Sprintf("evt-%d", i), order(fmt.Sprintf("o-%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		id := fmt.Sprintf("o-%d", i)
		if r.Attempts != 2 || !r.Replayed || r.ChargeID == "" {
			t.Errorf("%s: %+v, want a replayed answer on attempt 2", id, r)
		}
		if n := sim.ChargesFor(id); n != 1 {
			t.Errorf("%s charged %d times", id, n)
		}
		resp, err := http.Get(sim.URL() + "/charges?order_id=" + id)
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Charges []psp.Charge }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Charges) != 1 || list.Charges[0].ChargeID != r.ChargeID {
			t.Errorf("%s: GET /charges lists %+v, want one charge %s", id, list.Charges, r.ChargeID)
		}
	}
	if st := sim.Stats(); st.Timeouts != 10 || st.Charges != 10 {
		t.Fatalf("simulator stats %+v", st)
	}
}

func TestRetriesUnavailableGateway(t *testing.T) {
	sim := simulator(t, psp.Config{UnavailableRate: 0.3, Seed: 3})
	c := client(t, Config{BaseURL: sim.URL(), MaxAttempts: 10, Breaker: BreakerConfig{FailureThreshold: 10}})
	retried := 0
	for i := range 50 {
		r, err := c.Charge(t.Context(), fmt.Sprintf("evt-%d", i), order(fmt.Sprintf("o-%d", i)))
		if err != nil || r.Status != StatusSucceeded {
			t.Fatalf("charge %d: %+v, %v", i, r, err)
		}
		retried += r.Attempts - 1
	}
	st := sim.Stats()
	if st.Charges != 50 || st.Unavailable == 0 || st.Unavailable != retried || st.Requests != 50+retried {
		t.Fatalf("simulator stats %+v, client retries %d", st, retried)
	}

	// Out of attempts: ErrUnavailable, transient.
	down := simulator(t, psp.Config{UnavailableRate: 1})
	dc := client(t, Config{BaseURL: down.URL(), MaxAttempts: 3})
	r, err := dc.Charge(t.Context(), "evt-x", order("o-x"))
	if !errors.Is(err, ErrUnavailable) || !IsTransient(err) || r.Attempts != 3 || down.Stats().Requests != 3 {
		t.Fatalf("got %+v, %v after %d requests; want ErrUnavailable after 3", r, err, down.Stats().Requests)
	}
}

func TestFailureRateHonoured(t *testing.T) {
	sim := simulator(t, psp.Config{FailureRate: 0.2, Seed: 42})
	// Declines are business answers: with 20% of them, runs of 3 declines
	// happen; they must not trip the breaker.
	c := client(t, Config{BaseURL: sim.URL(), Breaker: BreakerConfig{FailureThreshold: 3}})
	var declined, succeeded atomic.Int64
	var wg sync.WaitGroup
	keys := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range keys {
				_, err := c.Charge(t.Context(), fmt.Sprintf("evt-%d", i), order(fmt.Sprintf("o-%d", i)))
				switch {
				case err == nil:
					succeeded.Add(1)
				case errors.Is(err, ErrDeclined):
					declined.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	for i := range 1000 {
		keys <- i
	}
	close(keys)
	wg.Wait()
	if d := declined.Load(); d < 150 || d > 250 || succeeded.Load()+d != 1000 {
		t.Fatalf("%d declined, %d succeeded of 1000 at rate 0.2", d, succeeded.Load())
	}
	if st := sim.Stats(); st.Requests != 1000 || int64(st.Declines) != declined.Load() || int64(st.Charges) != succeeded.Load() {
		t.Fatalf("simulator stats %+v", st)
	}
	if c.State() != gobreaker.StateClosed {
		t.Fatalf("breaker %v after declines, want closed", c.State())
	}
}

func TestBreakerOpensWhileGatewayDownAndClosesAfter(t *testing.T) {
	sim, err := psp.Start(t.Context(), psp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := sim.Addr()
	var changes []string
	var mu sync.Mutex
	c := client(t, Config{BaseURL: sim.URL(), Timeout: 200 * time.Millisecond, MaxAttempts: 5,
		Breaker: BreakerConfig{FailureThreshold: 3, OpenTimeout: 300 * time.Millisecond,
			OnStateChange: func(_ string, from, to gobreaker.State) {
				mu.Lock()
				changes = append(changes, from.String()+">"+to.String())
				mu.Unlock()
			}}})
	if _, err := c.Charge(t.Context(), "evt-0", order("o-0")); err != nil {
		t.Fatal(err)
	}
	stop(t, sim)

	r, err := c.Charge(t.Context(), "evt-1", order("o-1"))
	if !errors.Is(err, ErrCircuitOpen) || !IsTransient(err) || r.Attempts != 3 {
		t.Fatalf("gateway down: %+v, %v; want ErrCircuitOpen after 3 attempts", r, err)
	}
	if c.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %v, want open", c.State())
	}

	// Back up, but the breaker is still open: fail fast, nothing sent.
	sim2 := simulator(t, psp.Config{Addr: addr})
	t0 := time.Now()
	r, err = c.Charge(t.Context(), "evt-1", order("o-1"))
	if !errors.Is(err, ErrCircuitOpen) || r.Attempts != 0 || sim2.Stats().Requests != 0 || time.Since(t0) > 50*time.Millisecond {
		t.Fatalf("open breaker: %+v, %v in %v, %d requests sent", r, err, time.Since(t0), sim2.Stats().Requests)
	}

	time.Sleep(350 * time.Millisecond) // OpenTimeout: half-open
	if c.State() != gobreaker.StateHalfOpen {
		t.Fatalf("breaker %v, want half-open", c.State())
	}
	r, err = c.Charge(t.Context(), "evt-1", order("o-1"))
	if err != nil || r.Status != StatusSucceeded {
		t.Fatalf("after recovery: %+v, %v", r, err)
	}
	if c.State() != gobreaker.StateClosed || sim2.ChargesFor("o-1") != 1 {
		t.Fatalf("breaker %v, charges %d; want closed and 1", c.State(), sim2.ChargesFor("o-1"))
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != "[closed>open open>half-open half-open>closed]" {
		t.Fatalf("state changes %v", changes)
	}
}

func TestContextCancellationStopsRetries(t *testing.T) {
	// Backoff: cancelling during the wait returns at once.
	down := simulator(t, psp.Config{UnavailableRate: 1})
	c := client(t, Config{BaseURL: down.URL(), MaxAttempts: 10, MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second,
		Breaker: BreakerConfig{FailureThreshold: 100}})
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	r, err := c.Charge(ctx, "evt-c", order("o-c"))
	if !errors.Is(err, context.DeadlineExceeded) || IsTransient(err) || time.Since(t0) > 500*time.Millisecond {
		t.Fatalf("got %+v, %v after %v; want the ctx error at once", r, err, time.Since(t0))
	}
	if n := down.Stats().Requests; n > 3 || n != r.Attempts {
		t.Fatalf("%d requests (result says %d); retries went on after cancel", n, r.Attempts)
	}

	// In flight: the attempt stops, and the caller's cancellation does not
	// count against the gateway.
	slow := simulator(t, psp.Config{Latency: 3 * time.Second})
	sc := client(t, Config{BaseURL: slow.URL(), Timeout: 5 * time.Second, Breaker: BreakerConfig{FailureThreshold: 1}})
	ctx2, cancel2 := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel2)
	t0 = time.Now()
	r, err = sc.Charge(ctx2, "evt-s", order("o-s"))
	if !errors.Is(err, context.Canceled) || r.Attempts != 1 || time.Since(t0) > time.Second {
		t.Fatalf("got %+v, %v after %v", r, err, time.Since(t0))
	}
	if sc.State() != gobreaker.StateClosed {
		t.Fatalf("breaker %v after the caller's cancellation, want closed", sc.State())
	}

	// Already cancelled: nothing is sent.
	done, cancel3 := context.WithCancel(t.Context())
	cancel3()
	before := slow.Stats().Requests
	if _, err := sc.Charge(done, "evt-z", order("o-z")); !errors.Is(err, context.Canceled) || slow.Stats().Requests != before {
		t.Fatalf("cancelled ctx: %v, %d requests", err, slow.Stats().Requests-before)
	}
}

func TestRejectedIsPermanent(t *testing.T) {
	sim := simulator(t, psp.Config{})
	c := client(t, Config{BaseURL: sim.URL()})
	if _, err := c.Charge(t.Context(), "evt-r", order("o-r")); err != nil {
		t.Fatal(err)
	}
	other := order("o-r")
	other.AmountCents = 1
	r, err := c.Charge(t.Context(), "evt-r", other)
	if !errors.Is(err, ErrRejected) || IsTransient(err) || r.Attempts != 1 {
		t.Fatalf("key reused with another body: %+v, %v; want ErrRejected after 1 attempt", r, err)
	}
	if _, err := c.Charge(t.Context(), "", order("o-r")); !errors.Is(err, ErrRejected) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := c.Charge(t.Context(), "evt-bad", ChargeRequest{OrderID: "o"}); !errors.Is(err, ErrRejected) {
		t.Fatalf("bad request: %v", err)
	}
	// Two well-formed requests reached the simulator (it does not count the 400).
	if c.State() != gobreaker.StateClosed || sim.Stats().Requests != 2 {
		t.Fatalf("breaker %v, requests %d", c.State(), sim.Stats().Requests)
	}
}

func TestRetryAfterIsHonouredUpToMaxBackoff(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"charge_id":"ch_1","status":"succeeded"}`))
	}))
	defer srv.Close()
	c := client(t, Config{BaseURL: srv.URL, MinBackoff: time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t0 := time.Now()
	r, err := c.Charge(t.Context(), "evt-1", order("o-1"))
	if d := time.Since(t0); err != nil || r.ChargeID != "ch_1" || r.Attempts != 2 || d < 190*time.Millisecond || d > 2*time.Second {
		t.Fatalf("%+v, %v after %v; want success on attempt 2 after waiting MaxBackoff", r, err, d)
	}
}

func TestBackoffIsExponentialWithFullJitter(t *testing.T) {
	c := client(t, Config{BaseURL: "http://x", MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	for n, ceiling := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 80 * time.Millisecond, 9: 80 * time.Millisecond} {
		var lo, hi time.Duration = time.Hour, 0
		for range 500 {
			d := c.backoff(n)
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi > ceiling || hi < ceiling*8/10 || lo > ceiling/10 {
			t.Errorf("attempt %d: waits in [%v, %v], want spread over [0, %v]", n, lo, hi, ceiling)
		}
	}
}
