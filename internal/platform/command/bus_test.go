package command_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"shopstream/internal/platform/command"
)

// ping and pong are commands of the tests; ping checks its own fields.
type ping struct{ N int }

func (ping) CommandName() string { return "test.Ping" }

func (p ping) Validate() error {
	if p.N < 0 {
		return command.Invalid("n", "must not be negative")
	}
	return nil
}

type pong struct{}

func (pong) CommandName() string { return "test.Pong" }

// impostor is named like ping but is not one.
type impostor struct{}

func (impostor) CommandName() string { return "test.Ping" }

func echo(_ context.Context, _ command.Meta, p ping) (command.Result, error) {
	return command.OK(p.N), nil
}

func TestDispatch(t *testing.T) {
	b := command.NewBus()
	var gotMeta command.Meta
	command.Register(b, func(_ context.Context, meta command.Meta, p ping) (command.Result, error) {
		gotMeta = meta
		return command.OK(p.N), nil
	})
	command.Register(b, func(context.Context, command.Meta, pong) (command.Result, error) {
		return command.Created("/pongs/1", "1"), nil
	})
	meta := command.Meta{CorrelationID: "c", CausationID: "k"}
	res, err := b.Dispatch(context.Background(), meta, ping{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	if want := (command.Result{Status: http.StatusOK, Body: 7}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if gotMeta != meta {
		t.Fatalf("meta %+v, want %+v", gotMeta, meta)
	}
	res, err = b.Dispatch(context.Background(), meta, pong{})
	if want := (command.Result{Status: http.StatusCreated, Location: "/pongs/1", Body: map[string]string{"id": "1"}}); err != nil || !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, %v; want %+v", res, err, want)
	}
}

func TestDispatchUnknownCommand(t *testing.T) {
	b := command.NewBus()
	command.Register(b, echo)
	_, err := b.Dispatch(context.Background(), command.Meta{}, pong{})
	if err == nil || !strings.Contains(err.Error(), "test.Pong") || !strings.Contains(err.Error(), "no handler") {
		t.Fatalf("error %v, want no handler for test.Pong", err)
	}
	if o := command.Outcome(command.Result{}, err); o != "error" {
		t.Fatalf("outcome %s, want error: an unregistered command is a wiring bug", o)
	}
}

func TestDispatchCommandOfAnotherType(t *testing.T) {
	b := command.NewBus()
	called := false
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
		called = true
		return command.Result{}, nil
	})
	if _, err := b.Dispatch(context.Background(), command.Meta{}, impostor{}); err == nil {
		t.Fatal("a command of another type under the same name was dispatched")
	}
	if called {
		t.Fatal("the handler ran")
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	b := command.NewBus()
	command.Register(b, echo)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "test.Ping") {
			t.Fatalf("panic %v, want one naming test.Ping", r)
		}
	}()
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) { return command.Result{}, nil })
}

func TestMiddlewareOrder(t *testing.T) {
	var trace []string
	mark := func(name string) command.Middleware {
		return func(next command.Handler) command.Handler {
			return func(ctx context.Context, meta command.Meta, cmd command.Command) (command.Result, error) {
				trace = append(trace, name+" in")
				res, err := next(ctx, meta, cmd)
				trace = append(trace, name+" out")
				return res, err
			}
		}
	}
	b := command.NewBus(mark("first"), mark("second"), mark("third"))
	command.Register(b, func(context.Context, command.Meta, ping) (command.Result, error) {
		trace = append(trace, "handler")
		return command.Result{}, nil
	})
	if _, err := b.Dispatch(context.Background(), command.Meta{}, ping{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"first in", "second in", "third in", "handler", "third out", "second out", "first out"}
	if !reflect.DeepEqual(trace, want) {
		t.Fatalf("trace %q, want %q", trace, want)
	}
}
