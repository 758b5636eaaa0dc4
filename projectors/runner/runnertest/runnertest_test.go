package runnertest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB // nil: any other method called panics, which is a failure too
	errs       []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// doc is a counter of the events folded into it, with a version guard
// according to the fold under test.
type doc struct {
	Count int
	Last  int64
	Seen  map[int64]bool
}

func envs(docs, perDoc int) []eventlog.Envelope {
	var out []eventlog.Envelope
	for v := int64(1); v <= int64(perDoc); v++ {
		for d := range docs {
			out = append(out, eventlog.Envelope{Topic: schemas.TopicProducts, Event: schemas.ProductRestocked{Quantity: 1},
				Meta: eventlog.Metadata{AggregateID: fmt.Sprintf("d%d", d), AggregateVersion: v}})
		}
	}
	return out
}

func byAggregate(env eventlog.Envelope) string { return env.Meta.AggregateID }

func TestIdempotent(t *testing.T) {
	cases := []struct {
		name  string
		apply func(doc, eventlog.Envelope) doc
		envs  []eventlog.Envelope
		want  string // "" for no failure, else a substring of the first failure
	}{
		{"guarded by the highest version", func(d doc, env eventlog.Envelope) doc {
			if env.Meta.AggregateVersion <= d.Last {
				return d
			}
			d.Count++
			d.Last = env.Meta.AggregateVersion
			return d
		}, envs(3, 20), ""},
		{"unguarded", func(d doc, env eventlog.Envelope) doc {
			d.Count++
			return d
		}, envs(3, 20), "each event twice in a row"},
		// Skips an event equal to the last one only: twice in a row is
		// fine, a redelivered batch is not.
		{"guarded against the last event only", func(d doc, env eventlog.Envelope) doc {
			if env.Meta.AggregateVersion == d.Last {
				return d
			}
			d.Count++
			d.Last = env.Meta.AggregateVersion
			return d
		}, envs(3, 20), "redelivered batches, seed 1"},
		{"edits its input's map in place", func(d doc, env eventlog.Envelope) doc {
			if d.Seen[env.Meta.AggregateVersion] {
				return d
			}
			if d.Seen == nil {
				d.Seen = map[int64]bool{}
			}
			d.Seen[env.Meta.AggregateVersion] = true
			d.Count++
			return d
		}, envs(2, 5), "apply changed the document it was given"},
		{"copies its map", func(d doc, env eventlog.Envelope) doc {
			if d.Seen[env.Meta.AggregateVersion] {
				return d
			}
			d.Seen = maps.Clone(d.Seen)
			if d.Seen == nil {
				d.Seen = map[int64]bool{}
			}
			d.Seen[env.Meta.AggregateVersion] = true
			d.Count++
			return d
		}, envs(2, 5), ""},
		{"no events", func(d doc, _ eventlog.Envelope) doc { return d }, nil, "nothing was checked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{}
			Idempotent(r, c.apply, byAggregate, c.envs)
			switch {
			case c.want == "" && len(r.errs) > 0:
				t.Fatalf("want no failure, got %d:\n%s", len(r.errs), strings.Join(r.errs, "\n"))
			case c.want != "" && len(r.errs) == 0:
				t.Fatalf("want a failure with %q, got none", c.want)
			case c.want != "" && !strings.Contains(r.errs[0], c.want):
				t.Fatalf("want a failure with %q, got:\n%s", c.want, r.errs[0])
			}
		})
	}
}

func TestIdempotentShowsTheDifferingDocument(t *testing.T) {
	r := &recorder{}
	Idempotent(r, func(d doc, env eventlog.Envelope) doc { d.Count++; return d }, byAggregate, envs(2, 1))
	if len(r.errs) == 0 {
		t.Fatal("an unguarded fold passed")
	}
	for _, want := range []string{`document "d0"`, `document "d1"`, `"Count": 1`, `"Count": 2`} {
		if !strings.Contains(r.errs[0], want) {
			t.Errorf("failure lacks %q:\n%s", want, r.errs[0])
		}
	}
}

func TestFoldSkipsEventsOfNoDocument(t *testing.T) {
	in := envs(2, 3)
	in[1].Meta.AggregateID = ""
	got := Fold(func(d doc, _ eventlog.Envelope) doc { d.Count++; return d }, byAggregate, in)
	if len(got) != 2 || got["d0"].Count != 3 || got["d1"].Count != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestRedelivered(t *testing.T) {
	in := envs(1, 40)
	version := func(e eventlog.Envelope) int64 { return e.Meta.AggregateVersion }
	for seed := uint64(1); seed <= Seeds; seed++ {
		out := Redelivered(in, seed)
		if !slices.EqualFunc(out, Redelivered(in, seed), func(a, b eventlog.Envelope) bool { return version(a) == version(b) }) {
			t.Fatalf("seed %d: two schedules differ", seed)
		}
		// First deliveries keep the order of in, every event comes at
		// least once, and some come again.
		next := int64(1)
		for _, e := range out {
			switch v := version(e); {
			case v == next:
				next++
			case v > next:
				t.Fatalf("seed %d: event %d delivered before event %d", seed, v, next)
			}
		}
		if next != 41 || len(out) <= len(in) {
			t.Fatalf("seed %d: %d of 40 events delivered, %d deliveries", seed, next-1, len(out))
		}
	}
	if slices.EqualFunc(Redelivered(in, 1), Redelivered(in, 2), func(a, b eventlog.Envelope) bool { return version(a) == version(b) }) {
		t.Fatal("seeds 1 and 2 give the same schedule")
	}
}
