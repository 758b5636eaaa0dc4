// Package commandtest checks the answers of the pure Decide rules of the
// write services in their given/when/then tests.
package commandtest

import (
	"errors"
	"reflect"
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// Then checks what a Decide answered (got, err) against a case: the error
// is want (errors.Is; nil for none), it names field when field is not
// empty (a *command.FieldError), and the events are then (nil or empty
// for none: a replay changes nothing).
func Then(t testing.TB, got []schemas.Event, err error, then []schemas.Event, want error, field string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if field != "" {
		var fe *command.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Fatalf("error %v does not name field %s", err, field)
		}
	}
	if len(got) == 0 && len(then) == 0 {
		return
	}
	if !reflect.DeepEqual(got, then) {
		t.Fatalf("events\n got %#v\nwant %#v", got, then)
	}
}

// Rule is a context's pure rule, as its package declares it: Decide(state,
// version, command) and Evolve(state, events...).
type Rule[S, C any] struct {
	Decide func(S, int64, C) ([]schemas.Event, error)
	Evolve func(S, ...schemas.Event) S
	// Idempotent says that every command of the rule is: decided again on
	// the state its own events made, it decides nothing. Run then checks
	// it for every case that decides events.
	Idempotent bool
}

// Case is one given/when/then case of a Rule: given the events the
// aggregate holds (its version is their number; none: it does not exist),
// when a command, then the events decided, or the error Err (errors.Is)
// naming Field, as Then checks them. State, when set, is the state after
// Evolve of given and then.
type Case[S, C any] struct {
	Name  string
	Given []schemas.Event
	When  C
	Then  []schemas.Event
	Err   error
	Field string
	State *S
}

// Run runs each case as a subtest of t.
func (r Rule[S, C]) Run(t *testing.T, cases []Case[S, C]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			var zero S
			state := r.Evolve(zero, c.Given...)
			version := int64(len(c.Given))
			got, err := r.Decide(state, version, c.When)
			Then(t, got, err, c.Then, c.Err, c.Field)
			next := r.Evolve(state, got...)
			if c.State != nil && !reflect.DeepEqual(next, *c.State) {
				t.Fatalf("state after Evolve\n got %+v\nwant %+v", next, *c.State)
			}
			if r.Idempotent && err == nil && len(got) > 0 {
				again, err := r.Decide(next, version+int64(len(got)), c.When)
				if err != nil || len(again) > 0 {
					t.Fatalf("the same command again decided %#v, %v; want nothing", again, err)
				}
			}
		})
	}
}
