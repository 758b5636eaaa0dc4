// Package email is the processor that sends the shop's emails over SMTP,
// paced to the provider's per-second quota for the whole consumer group
// (package quota): on EmailRequested it sends the email, with its invoice
// PDF attached, and records EmailSent.
//
// Guarantees: an email recorded as sent is never sent again. The
// Message-ID is stable per order ("invoice-<order id>@shopstream"): a
// crash after the relay accepted a message and before EmailSent was
// recorded sends it again with the same Message-ID, which the receiving
// side can recognise; that window is the one at-least-once effect left.
// The backlog waits in Kafka: the consumer buffers a few records per
// partition and pauses fetching beyond them.
package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pii"
	"shopstream/processors/consumer"
	"shopstream/processors/email/mailer"
	"shopstream/processors/email/quota"
	"shopstream/producers/billing"
	"shopstream/producers/notifications"
	"shopstream/schemas"
)

// Group is the email sender's consumer group.
const Group = "shop.processor.email.v1"

// Topics are what it consumes.
var Topics = []string{schemas.TopicEmails}

// Deps are what the sender uses.
type Deps struct {
	Notifications *notifications.Service
	// Reveal opens the address of a request, sealed under the customer's
	// key (customers.Service.Reveal); pii.ErrErased once it is destroyed.
	Reveal  func(ctx context.Context, keyID, sealed string) (string, error)
	Billing *billing.Service
	Mailer  *mailer.Mailer
	Pacer   *quota.Pacer
	Logger  *slog.Logger
	// Sent, if set, counts the emails the relay accepted (a
	// prometheus.Counter), resends after a crash included.
	Sent interface{ Inc() }
}

// Sender sends requested emails.
type Sender struct{ d Deps }

// New returns the sender.
func New(d Deps) *Sender {
	d.Logger = d.Logger.With("component", "email")
	if d.Reveal == nil { // plain addresses only
		d.Reveal = func(_ context.Context, keyID, sealed string) (string, error) {
			if keyID != "" {
				return "", fmt.Errorf("email: the address is sealed under %s and the sender has no Reveal", keyID)
			}
			return sealed, nil
		}
	}
	return &Sender{d: d}
}

// Config is its consumer: a small buffer, so the backlog stays in Kafka. A
// missing invoice document and a message the relay refuses for good are
// permanent.
func (s *Sender) Config(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: Topics, Serde: serde, Logger: s.d.Logger,
		Handler: s.Handle, MaxBuffered: 4, Permanent: []error{billing.ErrNoDocument, mailer.ErrPermanent},
		OnAssigned: func(p map[string][]int32) { s.d.Pacer.Assign(p[schemas.TopicEmails]) },
		OnReleased: func(p map[string][]int32) { s.d.Pacer.Release(p[schemas.TopicEmails]) },
	}
}

// RecordTimeout bounds one attempt to record a sent email, and how long the
// attempts go on once the sender is stopping: shorter than the 30 s a
// stopping instance is given.
const RecordTimeout = 20 * time.Second

// MessageID is the stable Message-ID of an order's invoice email.
func MessageID(orderID string) string { return "invoice-" + orderID + "@shopstream" }

// Handle sends the email an EmailRequested asks for, in the partition's
// next quota slot.
func (s *Sender) Handle(ctx context.Context, env eventlog.Envelope) error {
	e, ok := env.Event.(schemas.EmailRequested)
	if !ok {
		return nil
	}
	state, err := s.d.Notifications.Email(ctx, e.OrderID)
	if err != nil || state.Sent() {
		return err
	}
	keyID := ""
	if e.PIIKeyID != nil {
		keyID = *e.PIIKeyID
	}
	to, err := s.d.Reveal(ctx, keyID, e.To)
	if errors.Is(err, pii.ErrErased) {
		s.d.Logger.Info("email not sent: the customer was erased", "order_id", e.OrderID)
		return nil
	}
	if err != nil {
		return err
	}
	msg := mailer.Message{MessageID: MessageID(e.OrderID), To: to, Subject: e.Subject,
		Text: fmt.Sprintf("Thank you for your order %s.\r\nYour invoice is attached.\r\n\r\nshopstream", e.OrderID)}
	if e.AttachmentRef != nil {
		pdf, err := s.d.Billing.Document(ctx, *e.AttachmentRef)
		if err != nil {
			return err
		}
		msg.Attachments = []mailer.Attachment{{Name: "invoice-" + e.OrderID + ".pdf", ContentType: "application/pdf", Data: pdf}}
	}
	// The conversation with the relay runs up to DATA before the slot, so
	// that the relay receives the message one write and one round trip
	// after the slot starts, not after a dial and five round trips whose
	// length varies: the quota holds by the provider's clock too.
	pending, err := s.d.Mailer.Prepare(ctx, msg)
	if err != nil {
		return err
	}
	if _, err := s.d.Pacer.Wait(ctx); err != nil {
		pending.Abort()
		return err
	}
	at := time.Now() // the send's real start, within the slot's tolerance
	if err := pending.Commit(); err != nil {
		return err
	}
	if s.d.Sent != nil {
		s.d.Sent.Inc()
	}
	// The email is out: a failure from here must not make the consumer
	// handle the record again, which would send it a second time. So
	// recording the send is retried here, with backoff, until it succeeds
	// or the command is refused: for as long as ctx lives (a PostgreSQL
	// outage is waited out), then RecordTimeout more once ctx ends, so that
	// a graceful stop (SIGTERM, a revoked partition) during a send still
	// records it. Only a crash between the send and the record, or an
	// outage that outlasts a stop's grace, sends twice.
	mark := notifications.MarkSent{OrderID: e.OrderID, MessageID: msg.MessageID, SentAt: at}
	meta := command.CausedBy(ctx, env.Meta)
	detached := context.WithoutCancel(ctx)
	var grace <-chan time.Time // runs from when ctx ends
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		cctx, cancel := context.WithTimeout(detached, RecordTimeout)
		err := s.d.Notifications.MarkSent(cctx, meta, mark)
		cancel()
		if err == nil || errors.Is(err, command.ErrInvalid) || errors.Is(err, command.ErrNotFound) || errors.Is(err, command.ErrConflict) {
			return err
		}
		s.d.Logger.Warn("recording a sent email failed; retrying (the email is not sent again)", "order_id", e.OrderID, "err", err, "backoff", backoff)
		if grace == nil && ctx.Err() != nil {
			grace = time.After(RecordTimeout)
		}
		select {
		case <-grace:
			return fmt.Errorf("record the email of order %s as sent: stopped %v ago (after: %v)", e.OrderID, RecordTimeout, err)
		case <-time.After(backoff):
		}
	}
}
