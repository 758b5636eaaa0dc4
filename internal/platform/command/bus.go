package command

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
)

// Command is a request to change the shop's state. Its name identifies its
// handler on the bus and labels its logs and metrics.
type Command interface {
	CommandName() string
}

// Validator is a command that can check its own fields before any I/O. The
// Validation middleware calls it; a context's Decide may call it again so
// that the pure rule stays total.
type Validator interface {
	Validate() error
}

// Result is a command's answer, in the gateway's terms: the HTTP status,
// the Location of a created resource (if any) and the JSON body. It is
// what an idempotency key replays.
type Result struct {
	Status   int
	Location string
	Body     any
	// Replayed is true when the answer comes from an earlier request with
	// the same idempotency key, and nothing was done this time.
	Replayed bool
}

// Handler handles one command.
type Handler func(ctx context.Context, meta Meta, cmd Command) (Result, error)

// Middleware wraps a handler with a concern every command shares.
type Middleware func(next Handler) Handler

// Bus routes each command to its handler through the middlewares. It is
// safe for concurrent use once every handler is registered.
type Bus struct {
	handlers map[string]Handler
	chain    []Middleware
}

// NewBus returns a bus whose middlewares run in the order given: the first
// is the outermost.
func NewBus(chain ...Middleware) *Bus {
	return &Bus{handlers: map[string]Handler{}, chain: chain}
}

// Register adds the handler of commands of type C. It panics when C is
// already registered: two handlers for one command is a wiring bug.
func Register[C Command](b *Bus, h func(ctx context.Context, meta Meta, cmd C) (Result, error)) {
	var zero C
	name := zero.CommandName()
	if _, dup := b.handlers[name]; dup {
		panic("command: two handlers for " + name)
	}
	var handler Handler = func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
		c, ok := cmd.(C)
		if !ok {
			return Result{}, fmt.Errorf("command %s: handler of %T got %T", name, zero, cmd)
		}
		return h(ctx, meta, c)
	}
	for i := len(b.chain) - 1; i >= 0; i-- {
		handler = b.chain[i](handler)
	}
	b.handlers[name] = handler
}

// Dispatch runs cmd through the middlewares to its handler.
func (b *Bus) Dispatch(ctx context.Context, meta Meta, cmd Command) (Result, error) {
	h, ok := b.handlers[cmd.CommandName()]
	if !ok {
		return Result{}, fmt.Errorf("command %s (%s): no handler registered", cmd.CommandName(), reflect.TypeOf(cmd))
	}
	return h(ctx, meta, cmd)
}

// Created is the result of a command that made a resource: 201, its
// Location and {"id": id}.
func Created(location, id string) Result {
	return Result{Status: http.StatusCreated, Location: location, Body: map[string]string{"id": id}}
}

// OK is the result of a command answered with body.
func OK(body any) Result { return Result{Status: http.StatusOK, Body: body} }
