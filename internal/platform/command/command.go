// Package command holds what every write service shares: the errors a
// command handler returns, which the gateway maps to HTTP statuses, and the
// metadata a command carries into the events it causes.
package command

import (
	"context"
	"errors"
	"fmt"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/tracing"
)

// Sentinel errors callers branch on with errors.Is.
var (
	ErrInvalid  = errors.New("invalid command")   // 422: the command breaks a rule
	ErrNotFound = errors.New("not found")         // 404: an id names nothing
	ErrConflict = errors.New("conflict")          // 409: the state forbids it
	ErrVersion  = errors.New("concurrent update") // retried; 409 if retries run out
)

// FieldError says which field of a command is wrong and why. It wraps
// ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Unwrap makes a FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a FieldError.
func Invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Meta is what a command passes on to the events it causes.
type Meta struct {
	CorrelationID string // the request that started the chain
	CausationID   string // the request (or event) that caused this command
	TraceParent   string // W3C traceparent of the span that ran the command, if traced
	// Idempotency is the request's Idempotency-Key, when it sent one: the
	// command records it with its effect, in the same transaction.
	Idempotency *IdempotencyKey
}

// IdempotencyKey is a client's key for one request and a hash of what the
// request asked (method, path, body), to tell a retry from a misuse.
type IdempotencyKey struct {
	Key  string
	Hash string
}

// Shortage refuses an order line because its product has fewer units
// available than requested (SoldOut when it has none). It wraps
// ErrConflict: the gateway answers 409 with the product's id.
type Shortage struct {
	ProductID string
	Requested int64
	Available int64
	Unknown   bool // the inventory has not heard of the product yet
}

func (e *Shortage) Error() string {
	if e.Unknown {
		return fmt.Sprintf("product %s has no stock recorded yet", e.ProductID)
	}
	if e.SoldOut() {
		return fmt.Sprintf("product %s is sold out", e.ProductID)
	}
	return fmt.Sprintf("product %s has %d units available, %d requested", e.ProductID, e.Available, e.Requested)
}

// SoldOut tells whether the product has no unit left.
func (e *Shortage) SoldOut() bool { return e.Available == 0 }

// Unwrap makes a Shortage an ErrConflict.
func (e *Shortage) Unwrap() error { return ErrConflict }

// CausedBy is the metadata of a command an event causes, handled under
// ctx: the event's correlation, the event as cause, and as trace parent
// the span handling the event (ctx's: a child of the event's traceparent,
// or that traceparent itself when tracing is off), or the event's own
// traceparent when ctx carries no span (see tracing.Parent).
func CausedBy(ctx context.Context, ev eventlog.Metadata) Meta {
	return Meta{CorrelationID: ev.CorrelationID, CausationID: ev.EventID, TraceParent: tracing.Parent(ctx, ev.TraceParent)}
}
