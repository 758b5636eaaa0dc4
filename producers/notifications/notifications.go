// Package notifications is the write service of the emails the shop sends,
// on shop.notifications.emails.v1 keyed by order id, through the
// PostgreSQL write model (schema "notifications") and the outbox: one
// email per order is requested, and recorded as sent once.
package notifications

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"
)

// Source is the CloudEvents source of email events.
const Source = "shopstream/notifications"

// Email is the write-side state of an order's email.
type Email struct {
	To        string    `json:"to"`                   // sealed when PIIKeyID is set
	PIIKeyID  string    `json:"pii_key_id,omitempty"` // the customer's key (package pii)
	MessageID string    `json:"message_id,omitempty"` // set once sent
	SentAt    time.Time `json:"sent_at,omitzero"`
}

// Sent tells whether the email went out.
func (e Email) Sent() bool { return e.MessageID != "" }

// Request asks for an order's email.
type Request struct {
	OrderID, To, Subject, Template string
	AttachmentRef                  string // "" for none
	// PIIKeyID is the customer's key To is sealed under ("" for a plain
	// address, from before keys).
	PIIKeyID string
}

// MarkSent records that the email went out.
type MarkSent struct {
	OrderID, MessageID string
	SentAt             time.Time
}

// Command is an email command.
type Command interface{ orderID() string }

func (c Request) orderID() string  { return c.OrderID }
func (c MarkSent) orderID() string { return c.OrderID }

// Decide is the pure rule of emails: requested once, sent once.
func Decide(e Email, version int64, cmd Command) ([]schemas.Event, error) {
	switch c := cmd.(type) {
	case Request:
		if version > 0 {
			return nil, nil
		}
		if c.To == "" {
			return nil, command.Invalid("to", "must not be empty")
		}
		ev := schemas.EmailRequested{OrderID: c.OrderID, To: c.To, Subject: c.Subject, Template: c.Template}
		if c.AttachmentRef != "" {
			ev.AttachmentRef = &c.AttachmentRef
		}
		if c.PIIKeyID != "" {
			ev.PIIKeyID = &c.PIIKeyID
		}
		return []schemas.Event{ev}, nil
	case MarkSent:
		if e.Sent() {
			return nil, nil
		}
		if c.MessageID == "" { // Sent tells a sent email by its message id
			return nil, command.Invalid("message_id", "must not be empty")
		}
		sent := schemas.EmailSent{OrderID: c.OrderID, To: e.To, MessageID: c.MessageID, SentAt: c.SentAt.UTC()}
		if e.PIIKeyID != "" {
			sent.PIIKeyID = &e.PIIKeyID
		}
		return []schemas.Event{sent}, nil
	}
	return nil, command.Invalid("command", "unknown command")
}

// Evolve folds events into the state.
func Evolve(e Email, events ...schemas.Event) Email {
	for _, ev := range events {
		switch ev := ev.(type) {
		case schemas.EmailRequested:
			e.To, e.PIIKeyID = ev.To, ""
			if ev.PIIKeyID != nil {
				e.PIIKeyID = *ev.PIIKeyID
			}
		case schemas.EmailSent:
			e.MessageID, e.SentAt = ev.MessageID, ev.SentAt
		}
	}
	return e
}

// Migrations creates the notifications schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("notifications", "emails")}
}

// Service handles email commands.
type Service struct {
	emails *aggregate.Store[Email]
}

// NewService returns the notifications service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{emails: aggregate.NewStore[Email](pool, serde, "notifications.emails", Source)}
}

var decide = aggregate.Rule(Decide, Evolve)

// Request asks for an order's email in its own transaction; asking again
// changes nothing.
func (s *Service) Request(ctx context.Context, meta command.Meta, c Request) error {
	return s.emails.Exec(ctx, c.OrderID, meta, decide(c))
}

// Email returns an order's email state.
func (s *Service) Email(ctx context.Context, orderID string) (Email, error) {
	e, _, _, err := s.emails.Load(ctx, orderID)
	return e, err
}

// MarkSent records, in its own transaction, that the email went out.
func (s *Service) MarkSent(ctx context.Context, meta command.Meta, c MarkSent) error {
	return s.emails.Exec(ctx, c.OrderID, meta, decide(c))
}
