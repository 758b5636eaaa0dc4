// Package invoicing is the processor that invoices confirmed orders: on
// OrderConfirmed it renders the invoice PDF (lines with the catalogue's
// titles, totals, order and customer), stores it and issues the invoice,
// and requests the email that carries it, all in one transaction. An order
// invoiced already is skipped, so redelivery issues nothing twice.
package invoicing

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
	"shopstream/processors/invoicing/invoicepdf"
	"shopstream/producers/billing"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/notifications"
	"shopstream/producers/orders"
	"shopstream/schemas"
)

// Group is the billing processor's consumer group.
const Group = "shop.processor.billing.v1"

// Topics are what it consumes.
var Topics = []string{schemas.TopicOrders}

// Deps are the services the processor reads and writes.
type Deps struct {
	Billing       *billing.Service
	Notifications *notifications.Service
	Orders        *orders.Service
	Customers     *customers.Service
	Catalog       *catalog.Service
	Logger        *slog.Logger
	Now           func() time.Time // default time.Now
}

// Processor invoices confirmed orders.
type Processor struct{ d Deps }

// New returns the billing processor.
func New(d Deps) *Processor {
	if d.Now == nil {
		d.Now = time.Now
	}
	d.Logger = d.Logger.With("component", "billing")
	return &Processor{d: d}
}

// Config is its consumer. An order, customer or product it cannot find,
// and an invoice the PDF writer refuses or fails on, are permanent.
func (p *Processor) Config(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: Topics, Serde: serde, Logger: p.d.Logger, Handler: p.Handle,
		Permanent: []error{command.ErrNotFound, invoicepdf.ErrInvalid, invoicepdf.ErrRender}}
}

// Handle invoices the order an OrderConfirmed confirms.
func (p *Processor) Handle(ctx context.Context, env eventlog.Envelope) error {
	e, ok := env.Event.(schemas.OrderConfirmed)
	if !ok {
		return nil
	}
	meta := command.CausedBy(ctx, env.Meta)
	// Two steps, each in its context's own transaction and idempotent: the
	// invoice (with its PDF), then its email. A redelivery after a cut
	// between them finds the invoice issued and requests the email.
	issued, found, err := p.d.Billing.Invoice(ctx, e.OrderID)
	if err != nil {
		return err
	}
	if !found {
		inv, err := p.invoice(ctx, e.OrderID)
		if err != nil {
			return err
		}
		pdf, err := invoicepdf.Render(inv)
		if err != nil {
			return err
		}
		issue := billing.Issue{OrderID: e.OrderID, Number: inv.Number, CustomerID: inv.Customer.ID, TotalCents: inv.TotalCents}
		if err := p.d.Billing.Issue(ctx, meta, issue, pdf); err != nil {
			return err
		}
		if issued, _, err = p.d.Billing.Invoice(ctx, e.OrderID); err != nil { // the number that stands
			return err
		}
	}
	c, found, err := p.d.Customers.Customer(ctx, issued.CustomerID)
	if err != nil || !found {
		return notFound(err, found, "customer", issued.CustomerID)
	}
	// The address travels sealed under the customer's key; an erased
	// customer has none to send to.
	keyID, to, err := p.d.Customers.Seal(ctx, issued.CustomerID, c.Email)
	if c.Erased || errors.Is(err, pii.ErrErased) {
		p.d.Logger.Info("no invoice email: the customer was erased", "order_id", e.OrderID)
		return nil
	}
	if err != nil {
		return err
	}
	return p.d.Notifications.Request(ctx, meta, notifications.Request{
		OrderID: e.OrderID, To: to, PIIKeyID: keyID, Subject: "Your shopstream invoice " + issued.Number,
		Template: "invoice", AttachmentRef: billing.DocumentRef(e.OrderID)})
}

// invoice gathers what the invoice shows, with a new number.
func (p *Processor) invoice(ctx context.Context, orderID string) (invoicepdf.Invoice, error) {
	o, found, err := p.d.Orders.Order(ctx, orderID)
	if err != nil || !found {
		return invoicepdf.Invoice{}, notFound(err, found, "order", orderID)
	}
	c, found, err := p.d.Customers.Customer(ctx, o.CustomerID)
	if err != nil || !found {
		return invoicepdf.Invoice{}, notFound(err, found, "customer", o.CustomerID)
	}
	now := p.d.Now().UTC()
	inv := invoicepdf.Invoice{OrderID: orderID, IssuedAt: now, Currency: "EUR", TotalCents: o.TotalCents, PaymentMethod: o.PaymentMethod,
		Customer: invoicepdf.Customer{ID: o.CustomerID, Name: c.Name, Email: c.Email}}
	for _, l := range o.Lines {
		prod, _, err := p.d.Catalog.Product(ctx, l.ProductID)
		if err != nil {
			return invoicepdf.Invoice{}, err
		}
		inv.Lines = append(inv.Lines, invoicepdf.Line{ProductID: l.ProductID, Title: prod.Title, Quantity: int(l.Quantity), UnitPriceCents: l.UnitPriceCents})
	}
	if inv.Number, err = p.d.Billing.NextNumber(ctx, now); err != nil {
		return invoicepdf.Invoice{}, err
	}
	return inv, nil
}

func notFound(err error, found bool, what, id string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%s %s: %w", what, id, command.ErrNotFound)
}
