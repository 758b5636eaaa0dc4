// Package runnertest checks the promise every projection makes to the
// runner: its Apply is a pure fold that leaves a document unchanged for an
// event it has already applied. Idempotent folds a sequence of events the
// ways an at-least-once consumer can deliver it — once, each event twice,
// in batches redelivered after a crash before the commit, and replayed
// whole — and fails the test unless every way gives the same documents.
//
// It takes the projection's Apply and DocID as plain functions, so it
// depends on no Kafka, MongoDB or runner type:
//
//	runnertest.Idempotent(t, orders.Apply, orders.DocID, envs)
package runnertest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"shopstream/internal/platform/eventlog"
)

// Seeds is how many pseudo-random redelivery schedules Idempotent tries
// (seeds 1..Seeds, so every run tries the same ones).
const Seeds = 8

// MaxBatch is the largest batch a redelivery schedule polls at once.
const MaxBatch = 7

// Fold folds envs, in the given order, into one document per id: each
// event goes to the document docID names, starting from the zero V; an
// event whose id is "" is skipped, as the runner skips it.
func Fold[V any](apply func(V, eventlog.Envelope) V, docID func(eventlog.Envelope) string, envs []eventlog.Envelope) map[string]V {
	docs := map[string]V{}
	for _, env := range envs {
		if id := docID(env); id != "" {
			docs[id] = apply(docs[id], env)
		}
	}
	return docs
}

// Redelivered is envs as a consumer that crashes after every batch, before
// committing, receives it: the events are polled in batches of 1 to
// MaxBatch, and after each batch an earlier slice is delivered again, from
// a pseudo-random start among the events delivered so far up to the
// current position; then polling goes on. The order of first deliveries
// is the order of envs. The same seed gives the same schedule.
func Redelivered(envs []eventlog.Envelope, seed uint64) []eventlog.Envelope {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var out []eventlog.Envelope
	for pos := 0; pos < len(envs); {
		end := min(pos+1+r.IntN(MaxBatch), len(envs))
		out = append(out, envs[pos:end]...)
		pos = end
		out = append(out, envs[r.IntN(pos):pos]...) // the crash: the uncommitted tail again
	}
	return out
}

// Idempotent checks that apply is a pure, idempotent fold over envs. The
// documents (envs grouped by docID, "" ids skipped, in the given order)
// must come out the same, by reflect.DeepEqual, when envs are delivered:
//
//  1. each event once (the reference);
//  2. each event twice in a row;
//  3. in redelivered batches (see Redelivered), for seeds 1..Seeds;
//  4. whole, then whole again (a replay over documents already built).
//
// It also checks that apply never changes the document it is given (a fold
// must return a new value, not edit shared slices or maps in place): two
// documents built apart from the same events stay equal while one is
// folded further.
//
// A difference fails t (with Errorf) and shows, per differing document,
// both versions. Idempotent fails t too when no event names a document,
// so that it never passes having checked nothing. It does not check that
// the documents are right: assert that on Fold's result.
func Idempotent[V any](t testing.TB, apply func(V, eventlog.Envelope) V, docID func(eventlog.Envelope) string, envs []eventlog.Envelope) {
	t.Helper()
	once := foldChecked(t, apply, docID, envs)
	if len(once) == 0 {
		t.Errorf("runnertest.Idempotent: none of the %d events names a document; nothing was checked", len(envs))
		return
	}
	compare := func(how string, envs []eventlog.Envelope) bool {
		t.Helper()
		got := Fold(apply, docID, envs)
		if reflect.DeepEqual(got, once) {
			return true
		}
		t.Errorf("runnertest.Idempotent: %s (%d deliveries) gives other documents than each event once:\n%s", how, len(envs), diff(once, got, how))
		return false
	}

	twice := make([]eventlog.Envelope, 0, 2*len(envs))
	for _, env := range envs {
		twice = append(twice, env, env)
	}
	compare("each event twice in a row", twice)
	for seed := uint64(1); seed <= Seeds; seed++ {
		if !compare(fmt.Sprintf("redelivered batches, seed %d", seed), Redelivered(envs, seed)) {
			break // one schedule is enough to read; the others say the same
		}
	}
	compare("whole sequence replayed", slices.Concat(envs, envs))
}

// foldChecked is Fold, checking on the way that apply leaves its input
// unchanged: a is folded further while b, built apart from the same
// events, must still equal a's input.
func foldChecked[V any](t testing.TB, apply func(V, eventlog.Envelope) V, docID func(eventlog.Envelope) string, envs []eventlog.Envelope) map[string]V {
	t.Helper()
	a, b := map[string]V{}, map[string]V{}
	mutated := false
	for i, env := range envs {
		id := docID(env)
		if id == "" {
			continue
		}
		next := apply(a[id], env)
		if !mutated && !reflect.DeepEqual(a[id], b[id]) {
			mutated = true
			t.Errorf("runnertest.Idempotent: apply changed the document it was given, at event %d (%s on %s, version %d) of document %q:\n  before: %s\n  after:  %s",
				i, eventType(env), env.Topic, env.Meta.AggregateVersion, id, render(b[id]), render(a[id]))
		}
		a[id], b[id] = next, apply(b[id], env)
	}
	return b
}

func eventType(env eventlog.Envelope) string {
	if env.Event == nil {
		return "<nil event>"
	}
	return env.Event.EventType()
}

// diff shows, per document id, how got differs from want.
func diff[V any](want, got map[string]V, how string) string {
	ids := make([]string, 0, len(want)+len(got))
	for id := range want {
		ids = append(ids, id)
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		w, inWant := want[id]
		g, inGot := got[id]
		switch {
		case !inGot:
			fmt.Fprintf(&b, "document %q: missing (once: %s)\n", id, render(w))
		case !inWant:
			fmt.Fprintf(&b, "document %q: unexpected (%s)\n", id, render(g))
		case !reflect.DeepEqual(w, g):
			rw, rg := render(w), render(g)
			fmt.Fprintf(&b, "document %q:\n  first difference: %s\n  once: %s\n  %s: %s\n", id, firstDifference(rw, rg), rw, how, rg)
		}
	}
	return b.String()
}

// render shows a document as indented JSON (pointers followed, maps
// sorted), or with %+v when it cannot be marshalled.
func render(v any) string {
	out, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(out)
}

func firstDifference(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q vs %q", i+1, strings.TrimSpace(x), strings.TrimSpace(y))
		}
	}
	return "none in the JSON rendering (nil vs empty slice or map, or unexported fields)"
}
