package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/testbackend"
	"shopstream/producers/orders"
	"shopstream/schemas"
)

// database starts a private PostgreSQL under dir (or a database of its own
// on the shared container with SHOP_TEST_BACKEND=testcontainers) with the
// saga's schema, and returns its URL and a stop that keeps the data.
func database(t *testing.T, dir string) (url string, stop func()) {
	t.Helper()
	ctx := context.Background()
	if testbackend.Containers(t) {
		url = testbackend.Postgres(t)
		stop = func() {}
	} else {
		srv, err := postgres.Start(ctx, postgres.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		stop = func() { once.Do(func() { _ = srv.Stop(context.Background()) }) }
		t.Cleanup(stop)
		url = srv.URL()
	}
	pool := connect(t, url)
	if _, err := pgdb.Migrate(ctx, pool, Migrations()); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	return url, stop
}

func connect(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// journal records the commands the sagas under test ran, in place of the
// contexts, each taking a while so that instances overlap.
type journal struct {
	mu   sync.Mutex
	runs map[string][]Command // by order
}

func (j *journal) exec(_ context.Context, _ command.Meta, c Command) (Input, error) {
	time.Sleep(2 * time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	id := fmt.Sprint(c)
	switch c := c.(type) {
	case Reserve:
		id = c.OrderID
	case CancelOrder:
		id = c.OrderID
	case ReleaseUnits:
		id = c.OrderID
	case CancelPayment:
		id = c.OrderID
	case ConfirmOrder:
		id = c.OrderID
	case RefundPayment:
		id = c.OrderID
	}
	j.runs[id] = append(j.runs[id], c)
	return nil, nil
}

// count is how many commands of c's type order ran.
func (j *journal) count(order string, c Command) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, r := range j.runs[order] {
		if fmt.Sprintf("%T", r) == fmt.Sprintf("%T", c) {
			n++
		}
	}
	return n
}

func testSaga(pool *pgxpool.Pool, j *journal, t Timeouts) *Saga {
	s := New(Deps{Own: pool, Timeouts: t, Logger: slog.New(slog.DiscardHandler)})
	s.exec = j.exec
	return s
}

func orderID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func place(t *testing.T, s *Saga, id, method string) {
	t.Helper()
	_, err := s.Step(context.Background(), command.Meta{}, id, Placed{At: time.Now(), Order: schemas.OrderPlaced{
		OrderID: id, CustomerID: "c", PaymentMethod: method, TotalCents: 100,
		Items: []schemas.OrderLine{{ProductID: "p", Quantity: 1, UnitPriceCents: 100}}}})
	if err != nil {
		t.Fatal(err)
	}
}

// Two saga instances on one database, each with its scheduler: every
// deadline fires once, its compensation run once, and a paid order's
// deadline never fires.
func TestDeadlineFiresOnceAcrossTwoInstances(t *testing.T) {
	url, _ := database(t, t.TempDir())
	j := &journal{runs: map[string][]Command{}}
	timeouts := Timeouts{Card: 300 * time.Millisecond, Sepa: 600 * time.Millisecond}
	a, b := testSaga(connect(t, url), j, timeouts), testSaga(connect(t, url), j, timeouts)
	const n = 40
	for i := range n {
		method := orders.Card
		if i%2 == 1 {
			method = orders.Sepa
		}
		place(t, []*Saga{a, b}[i%2], orderID(i), method)
	}
	paid := orderID(n)
	place(t, a, paid, orders.Card)
	if _, err := b.Step(context.Background(), command.Meta{}, paid, Paid{}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	defer stop() // before the pools close, whatever the outcome
	var mu sync.Mutex
	fired := map[*Saga]int{}
	for _, s := range []*Saga{a, b} {
		sc := s.Scheduler(20 * time.Millisecond)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k, err := sc.FireDue(ctx)
				if err != nil && ctx.Err() == nil {
					t.Error(err)
				}
				mu.Lock()
				fired[s] += k
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		total := fired[a] + fired[b]
		mu.Unlock()
		if total >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deadlines fired, want %d", total, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time enough for a second firing to show
	stop()
	t.Logf("fired by the first instance: %d, by the second: %d", fired[a], fired[b])
	if fired[a]+fired[b] != n {
		t.Fatalf("%d firings, want %d", fired[a]+fired[b], n)
	}
	for i := range n {
		id := orderID(i)
		for _, c := range []Command{CancelOrder{}, ReleaseUnits{}, CancelPayment{}} {
			if got := j.count(id, c); got != 1 {
				t.Errorf("order %d: %T ran %d times, want once", i, c, got)
			}
		}
		st, _, err := a.State(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != StatusCancelled || st.Reason != orders.ReasonPaymentTimeout || st.Deadline != nil {
			t.Errorf("order %d: state %+v", i, st)
		}
		ds, err := a.Deadlines(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("order %d: deadlines %v", i, ds)
		}
		for _, d := range ds {
			if d.Fired == nil || d.Fired.Before(d.Due) {
				t.Errorf("order %d: deadline due %v fired %v", i, d.Due, d.Fired)
			}
		}
	}
	if got := j.count(paid, CancelOrder{}); got != 0 {
		t.Errorf("the paid order was cancelled %d times", got)
	}
	if ds, _ := a.Deadlines(context.Background(), paid); len(ds) != 0 {
		t.Errorf("the paid order keeps deadlines %v", ds)
	}
}

// A deadline recorded before the process and its database restart fires
// after the restart, once, and not before it is due.
func TestDeadlineSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	url, stop := database(t, dir)
	j := &journal{runs: map[string][]Command{}}
	timeouts := Timeouts{Card: 2 * time.Second}
	before := testSaga(connect(t, url), j, timeouts)
	id := orderID(1)
	placed := time.Now()
	place(t, before, id, orders.Card)
	k, err := before.Scheduler(0).FireDue(context.Background())
	if err != nil || k != 0 && time.Since(placed) < timeouts.Card {
		t.Fatalf("fired %d before due (%v)", k, err)
	}
	if k != 0 {
		t.Skipf("this machine took %v to place an order and fire, past the %v deadline: nothing left to restart", time.Since(placed), timeouts.Card)
	}
	before.own.Close()
	if testbackend.Containers(t) {
		t.Log("shared container: the database is not restarted, only the saga")
	} else {
		stop()
		url, _ = database(t, dir)
	}

	after := testSaga(connect(t, url), j, timeouts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- after.Scheduler(50 * time.Millisecond).Run(ctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	compensation := []Command{CancelOrder{}, ReleaseUnits{}, CancelPayment{}}
	for _, c := range compensation { // all three, not just the first: a loaded machine runs the rest later
		for j.count(id, c) == 0 {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("the deadline's %T never ran after the restart (commands %v)", c, j.runs[id])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ds, err := after.Deadlines(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d := ds[DeadlinePayment]; d.Fired == nil || d.Fired.Before(d.Due) {
		t.Fatalf("deadline %+v", d)
	}
	time.Sleep(200 * time.Millisecond) // room for a second firing, which must not come
	for _, c := range compensation {
		if got := j.count(id, c); got != 1 {
			t.Errorf("%T ran %d times, want once", c, got)
		}
	}
}

// A payment outcome for an order the saga has no row of (placed before
// the saga kept state, or whose first step has not committed yet) is
// decided on the order as the orders context has it; the first step, run
// after, changes nothing.
func TestOutcomeBeforeTheFirstStepIsDecidedOnTheOrder(t *testing.T) {
	url, _ := database(t, t.TempDir())
	j := &journal{runs: map[string][]Command{}}
	s := testSaga(connect(t, url), j, Timeouts{Card: time.Hour})
	placedOrder := orders.Order{CustomerID: "c", PaymentMethod: orders.Card, TotalCents: 100, Status: orders.StatusPlaced,
		Lines: []orders.Line{{ProductID: "p", Quantity: 1, UnitPriceCents: 100}}}
	s.order = func(context.Context, string) (orders.Order, bool, error) { return placedOrder, true, nil }
	ctx := context.Background()

	paid, declined := orderID(1), orderID(2)
	st, err := s.Step(ctx, command.Meta{}, paid, Paid{Method: orders.Card, Reference: "ch_1"})
	if err != nil || st.Status != StatusConfirmed || j.count(paid, ConfirmOrder{}) != 1 {
		t.Fatalf("paid: state %+v (%v), commands %v", st, err, j.runs[paid])
	}
	place(t, s, paid, orders.Card)
	if got, _, _ := s.State(ctx, paid); got.Status != StatusConfirmed || j.count(paid, Reserve{}) != 0 {
		t.Fatalf("placed after paid: state %+v, commands %v", got, j.runs[paid])
	}
	st, err = s.Step(ctx, command.Meta{}, declined, Declined{Reason: "card_declined"})
	if err != nil || st.Status != StatusCancelled || st.Reason != orders.ReasonPaymentFailed {
		t.Fatalf("declined: state %+v (%v)", st, err)
	}
	want := []Command{CancelOrder{OrderID: declined, Reason: orders.ReasonPaymentFailed},
		ReleaseUnits{OrderID: declined, Reason: orders.ReasonPaymentFailed, ProductIDs: []string{"p"}}}
	if fmt.Sprint(j.runs[declined]) != fmt.Sprint(want) {
		t.Fatalf("declined: commands %v, want %v", j.runs[declined], want)
	}
	if ds, _ := s.Deadlines(ctx, paid); len(ds) != 0 {
		t.Fatalf("deadlines of a paid order: %v", ds)
	}

	s.order = func(context.Context, string) (orders.Order, bool, error) { return orders.Order{}, false, nil }
	if _, err := s.Step(ctx, command.Meta{}, orderID(3), Paid{}); !errors.Is(err, ErrUnknownOrder) {
		t.Fatalf("paid, order unknown everywhere: %v", err)
	}
}
