// Package charging holds the processors that call the payment providers:
// the card processor (any number of instances share the card requests) and
// the SEPA processor, which consumes the one-partition SEPA request topic,
// so that exactly one instance at a time calls the bank (it accepts one
// source IP), and another takes over when it dies.
//
// A provider call carries the requesting event's id as idempotency key: a
// redelivered request, or a retry after a timeout, gets the provider's
// first answer and never charges twice. A payment already settled is not
// sent again. A decline is recorded as PaymentFailed; an outage is retried
// by the consumer (the client's circuit breaker makes that cheap).
package charging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/processors/charging/pspclient"
	"shopstream/processors/consumer"
	"shopstream/producers/payments"
	"shopstream/schemas"
)

// Consumer groups.
const (
	CardGroup = "shop.processor.payments.card.v1"
	SepaGroup = "shop.processor.payments.sepa.v1"
)

// The topics each group consumes.
var (
	CardTopics = []string{schemas.TopicPayments}
	SepaTopics = []string{schemas.TopicSepaRequests}
)

// Charger is a payment provider's client.
type Charger interface {
	Charge(ctx context.Context, idempotencyKey string, req pspclient.ChargeRequest) (pspclient.ChargeResult, error)
}

// Processor settles payments through the providers.
type Processor struct {
	svc        *payments.Service
	card, bank Charger
	log        *slog.Logger
}

// Deps are what the processors call: the payments context and each
// method's provider.
type Deps struct {
	Payments   *payments.Service
	Card, Bank Charger
	Logger     *slog.Logger
}

// New returns the payment processors' handlers.
func New(d Deps) *Processor {
	return &Processor{svc: d.Payments, card: d.Card, bank: d.Bank, log: d.Logger.With("component", "payments")}
}

// ErrNotRequested is a charge for an order whose payment the payments
// context never requested: permanent.
var ErrNotRequested = errors.New("payment never requested")

// permanent are the processors' permanent errors.
var permanent = []error{ErrNotRequested}

// CardConfig is the card processor's consumer.
func (p *Processor) CardConfig(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: CardGroup, Topics: CardTopics, Serde: serde, Logger: p.log, Permanent: permanent,
		Handler: func(ctx context.Context, env eventlog.Envelope) error {
			if e, ok := env.Event.(schemas.PaymentRequested); ok && e.Method == "card" {
				return p.charge(ctx, env, p.card, e.OrderID, e.AmountCents, e.Method)
			}
			return nil
		}}
}

// SepaConfig is the SEPA processor's consumer.
func (p *Processor) SepaConfig(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: SepaGroup, Topics: SepaTopics, Serde: serde, Logger: p.log, Permanent: permanent,
		Handler: func(ctx context.Context, env eventlog.Envelope) error {
			if e, ok := env.Event.(schemas.SepaTransferRequested); ok {
				return p.charge(ctx, env, p.bank, e.OrderID, e.AmountCents, "sepa")
			}
			return nil
		}}
}

func (p *Processor) charge(ctx context.Context, env eventlog.Envelope, provider Charger, orderID string, amount int64, method string) error {
	pay, found, err := p.svc.Payment(ctx, orderID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("order %s: %w", orderID, ErrNotRequested)
	}
	if pay.Status != payments.StatusRequested {
		return nil // settled already
	}
	res, err := provider.Charge(ctx, env.Meta.EventID, pspclient.ChargeRequest{OrderID: orderID, AmountCents: amount, Currency: "EUR", Method: method})
	settle := payments.Settle{OrderID: orderID}
	switch {
	case errors.Is(err, pspclient.ErrDeclined):
		settle.Reason = err.Error()
		if d := (*pspclient.DeclinedError)(nil); errors.As(err, &d) {
			settle.Reason = d.Reason
		}
	case err != nil:
		return err // transient: the consumer retries with the same key
	default:
		settle.Succeeded, settle.Reference = true, res.ChargeID
	}
	return p.svc.Settle(ctx, command.CausedBy(ctx, env.Meta), settle)
}
