package command_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shopstream/internal/platform/command"
)

// failing returns a handler of pings that answers with err.
func failing(err error) func(context.Context, command.Meta, ping) (command.Result, error) {
	return func(context.Context, command.Meta, ping) (command.Result, error) { return command.Result{}, err }
}

func TestOutcome(t *testing.T) {
	cases := []struct {
		res  command.Result
		err  error
		want string
	}{
		{want: "ok"},
		{res: command.Created("/x/1", "1"), want: "ok"},
		{res: command.Result{Replayed: true}, want: "replayed"},
		{err: command.Invalid("n", "bad"), want: "invalid"},
		{err: fmt.Errorf("cart: %w", command.ErrInvalid), want: "invalid"},
		{err: fmt.Errorf("product p: %w", command.ErrNotFound), want: "not_found"},
		{err: command.ErrConflict, want: "conflict"},
		{err: &command.Shortage{ProductID: "p", Requested: 2, Available: 1}, want: "conflict"},
		{err: fmt.Errorf("save: %w", command.ErrVersion), want: "conflict"},
		{err: command.ErrOverloaded, want: "overloaded"},
		{err: errors.New("connection refused"), want: "error"},
		{err: context.Canceled, want: "error"},
		{res: command.Result{Replayed: true}, err: errors.New("boom"), want: "error"},
	}
	for _, c := range cases {
		if got := command.Outcome(c.res, c.err); got != c.want {
			t.Errorf("Outcome(%+v, %v) = %s, want %s", c.res, c.err, got, c.want)
		}
	}
}

func TestValidation(t *testing.T) {
	calls := 0
	b := command.NewBus(command.Validation())
	command.Register(b, func(_ context.Context, _ command.Meta, p ping) (command.Result, error) {
		calls++
		return command.OK(p.N), nil
	})
	command.Register(b, func(context.Context, command.Meta, pong) (command.Result, error) {
		calls++
		return command.Result{}, nil
	})

	_, err := b.Dispatch(context.Background(), command.Meta{}, ping{N: -1})
	var fe *command.FieldError
	if !errors.As(err, &fe) || fe.Field != "n" || !errors.Is(err, command.ErrInvalid) {
		t.Fatalf("error %v, want invalid n", err)
	}
	if calls != 0 {
		t.Fatal("the handler ran on an invalid command")
	}
	if _, err := b.Dispatch(context.Background(), command.Meta{}, ping{N: 1}); err != nil || calls != 1 {
		t.Fatalf("valid command: error %v, %d calls", err, calls)
	}
	// A command that is no Validator goes through.
	if _, err := b.Dispatch(context.Background(), command.Meta{}, pong{}); err != nil || calls != 2 {
		t.Fatalf("command without Validate: error %v, %d calls", err, calls)
	}
}

func TestShed(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	b := command.NewBus(command.Shed(1))
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
		calls++
		entered <- struct{}{}
		<-release
		return command.OK("held"), nil
	})
	command.Register(b, func(context.Context, command.Meta, pong) (command.Result, error) { return command.OK("pong"), nil })

	done := make(chan error)
	go func() {
		_, err := b.Dispatch(context.Background(), command.Meta{}, ping{})
		done <- err
	}()
	<-entered // the ping holds the only slot
	for _, cmd := range []command.Command{ping{}, pong{}} {
		res, err := b.Dispatch(context.Background(), command.Meta{}, cmd)
		if !errors.Is(err, command.ErrOverloaded) {
			t.Fatalf("%s while the slot is held: %+v, %v; want ErrOverloaded", cmd.CommandName(), res, err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d calls of the handler, want 1: a shed command must not run", calls)
	}
	// The slot is free again.
	if res, err := b.Dispatch(context.Background(), command.Meta{}, pong{}); err != nil || res.Body != "pong" {
		t.Fatalf("after release: %+v, %v", res, err)
	}
	go func() { <-entered }()
	if res, err := b.Dispatch(context.Background(), command.Meta{}, ping{}); err != nil || res.Body != "held" {
		t.Fatalf("after release: %+v, %v", res, err)
	}
}

func TestShedFreesTheSlotOfAFailure(t *testing.T) {
	b := command.NewBus(command.Shed(1))
	command.Register(b, failing(errors.New("boom")))
	for range 3 {
		if _, err := b.Dispatch(context.Background(), command.Meta{}, ping{}); errors.Is(err, command.ErrOverloaded) {
			t.Fatal("a failed command kept its slot")
		}
	}
}

func TestShedAdmitsMax(t *testing.T) {
	var wg sync.WaitGroup
	entered, release := make(chan struct{}), make(chan struct{})
	b := command.NewBus(command.Shed(2))
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
		entered <- struct{}{}
		<-release
		return command.Result{}, nil
	})
	for range 2 {
		wg.Go(func() {
			if _, err := b.Dispatch(context.Background(), command.Meta{}, ping{}); err != nil {
				t.Error(err)
			}
		})
		<-entered
	}
	if _, err := b.Dispatch(context.Background(), command.Meta{}, ping{}); !errors.Is(err, command.ErrOverloaded) {
		t.Fatalf("third command: %v, want ErrOverloaded", err)
	}
	close(release)
	wg.Wait()
}

func TestRetry(t *testing.T) {
	lost := fmt.Errorf("save p: %w", command.ErrVersion)
	cases := []struct {
		name      string
		attempts  int
		errs      []error // of each call; the last one repeats
		calls     int
		want      error
		wantValue any
	}{
		{name: "ok", attempts: 3, errs: []error{nil}, calls: 1},
		{name: "lost once", attempts: 3, errs: []error{lost, nil}, calls: 2},
		{name: "lost until the last attempt", attempts: 3, errs: []error{lost, lost, nil}, calls: 3},
		{name: "lost every attempt", attempts: 3, errs: []error{lost}, calls: 3, want: command.ErrVersion},
		{name: "one attempt", attempts: 1, errs: []error{lost}, calls: 1, want: command.ErrVersion},
		{name: "conflict", attempts: 3, errs: []error{command.ErrConflict}, calls: 1, want: command.ErrConflict},
		{name: "invalid", attempts: 3, errs: []error{command.Invalid("n", "bad")}, calls: 1, want: command.ErrInvalid},
		{name: "not found", attempts: 3, errs: []error{command.ErrNotFound}, calls: 1, want: command.ErrNotFound},
		{name: "failure", attempts: 3, errs: []error{context.DeadlineExceeded}, calls: 1, want: context.DeadlineExceeded},
		{name: "lost then failure", attempts: 3, errs: []error{lost, command.ErrNotFound}, calls: 2, want: command.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			b := command.NewBus(command.Retry(c.attempts))
			command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
				err := c.errs[min(calls, len(c.errs)-1)]
				calls++
				if err != nil {
					return command.Result{}, err
				}
				return command.OK(calls), nil
			})
			res, err := b.Dispatch(context.Background(), command.Meta{}, ping{})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if calls != c.calls {
				t.Fatalf("%d calls, want %d", calls, c.calls)
			}
			if err == nil && res.Body != calls {
				t.Fatalf("result of call %v, want the last one (%d)", res.Body, calls)
			}
		})
	}
}

func TestRetryStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	b := command.NewBus(command.Retry(1000))
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
		calls++
		cancel()
		if calls > 2 {
			return command.Result{}, errors.New("still retrying") // fail fast, not after 1000 pauses
		}
		return command.Result{}, command.ErrVersion
	})
	start := time.Now()
	_, err := b.Dispatch(ctx, command.Meta{}, ping{})
	if !errors.Is(err, command.ErrVersion) {
		t.Fatalf("error %v, want ErrVersion", err)
	}
	// The pause races the cancelled context in a select: a pause that
	// happens to be a few nanoseconds may win once, never a thousand times.
	if calls > 2 {
		t.Fatalf("%d calls after the context was cancelled on the first", calls)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v", took)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := command.NewBus(command.Metrics(reg))
	fail := errors.New("boom")
	var next error
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) { return command.Result{}, next })
	command.Register(b, func(context.Context, command.Meta, pong) (command.Result, error) {
		return command.Result{Replayed: true}, nil
	})
	for _, err := range []error{nil, nil, command.Invalid("n", "bad"), fail, nil} {
		next = err
		if _, got := b.Dispatch(context.Background(), command.Meta{}, ping{}); got != err {
			t.Fatalf("error %v, want %v unchanged", got, err)
		}
	}
	if _, err := b.Dispatch(context.Background(), command.Meta{}, pong{}); err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]uint64{
		{"test.Ping", "ok"}:       3,
		{"test.Ping", "invalid"}:  1,
		{"test.Ping", "error"}:    1,
		{"test.Pong", "replayed"}: 1,
	}
	if got := histogramCounts(t, reg, "shop_command_duration_seconds"); !equalCounts(got, want) {
		t.Fatalf("observations by command and outcome %v, want %v", got, want)
	}
}

// histogramCounts gathers reg and returns the sample count of each series
// of histogram name, by its command and outcome labels.
//
// (prometheus/testutil would do, but it needs a go.sum entry for
// github.com/kylelemons/godebug, which the module does not have.)
func histogramCounts(t *testing.T, reg prometheus.Gatherer, name string) map[[2]string]uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[[2]string]uint64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if len(labels) != 2 {
				t.Fatalf("labels %v, want command and outcome", labels)
			}
			h := m.GetHistogram()
			if h == nil {
				t.Fatalf("%s is not a histogram", name)
			}
			counts[[2]string{labels["command"], labels["outcome"]}] = h.GetSampleCount()
		}
	}
	return counts
}

func equalCounts(a, b map[[2]string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// records is a slog handler that keeps what is logged.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.list = append(h.list, r.Clone())
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

func attrs(r slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
	return m
}

func TestLogging(t *testing.T) {
	fail := errors.New("connection refused")
	cases := []struct {
		name    string
		res     command.Result
		err     error
		level   slog.Level
		outcome string
	}{
		{name: "ok", level: slog.LevelDebug, outcome: "ok"},
		{name: "replayed", res: command.Result{Replayed: true}, level: slog.LevelDebug, outcome: "replayed"},
		{name: "invalid", err: command.Invalid("n", "bad"), level: slog.LevelDebug, outcome: "invalid"},
		{name: "not found", err: command.ErrNotFound, level: slog.LevelDebug, outcome: "not_found"},
		{name: "conflict", err: command.ErrVersion, level: slog.LevelDebug, outcome: "conflict"},
		{name: "shortage", err: &command.Shortage{ProductID: "p", Requested: 1}, level: slog.LevelDebug, outcome: "conflict"},
		{name: "overloaded", err: command.ErrOverloaded, level: slog.LevelDebug, outcome: "overloaded"},
		{name: "error", err: fail, level: slog.LevelError, outcome: "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &records{}
			b := command.NewBus(command.Logging(slog.New(h)))
			command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) { return c.res, c.err })
			res, err := b.Dispatch(context.Background(), command.Meta{CorrelationID: "corr"}, ping{})
			if err != c.err || res != c.res {
				t.Fatalf("answer %+v, %v; want %+v, %v unchanged", res, err, c.res, c.err)
			}
			if len(h.list) != 1 {
				t.Fatalf("%d records, want 1", len(h.list))
			}
			r := h.list[0]
			if r.Level != c.level {
				t.Fatalf("level %v, want %v", r.Level, c.level)
			}
			a := attrs(r)
			for k, want := range map[string]string{"command": "test.Ping", "outcome": c.outcome, "correlation_id": "corr"} {
				if got := a[k].String(); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if _, ok := a["took"]; !ok {
				t.Error("no took")
			}
			if e, ok := a["err"]; c.level == slog.LevelError && (!ok || e.Any() != fail) {
				t.Errorf("err = %v, want %v", e, fail)
			}
		})
	}
}
