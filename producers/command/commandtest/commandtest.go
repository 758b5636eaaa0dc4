// Package commandtest checks the answers of the pure Decide rules of the
// write services in their given/when/then tests.
package commandtest

import (
	"errors"
	"reflect"
	"testing"

	"shopstream/producers/command"
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
