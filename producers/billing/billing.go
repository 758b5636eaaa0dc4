// Package billing is the write service of invoices, on
// shop.billing.invoices.v1 keyed by order id, through the PostgreSQL write
// model (schema "billing": the invoice aggregates, their numbers from a
// sequence, and the PDF documents) and the outbox.
//
// Guarantees: one invoice per order; its PDF is stored in the same
// transaction as the InvoiceIssued event, so an issued invoice always has
// its document.
package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"
)

// Source is the CloudEvents source of invoice events.
const Source = "shopstream/billing"

// Invoice is the write-side state of an order's invoice.
type Invoice struct {
	Number     string `json:"number"`
	CustomerID string `json:"customer_id"`
	TotalCents int64  `json:"total_cents"`
}

// Issue issues an order's invoice.
type Issue struct {
	OrderID     string
	Number      string
	CustomerID  string
	TotalCents  int64
	DocumentRef string
}

// Decide is the pure rule of invoices: one per order.
func Decide(_ Invoice, version int64, c Issue) ([]schemas.Event, error) {
	if version > 0 {
		return nil, nil // issued already
	}
	if c.Number == "" || c.TotalCents < 0 {
		return nil, command.Invalid("invoice", "needs a number and a total")
	}
	return []schemas.Event{schemas.InvoiceIssued{OrderID: c.OrderID, InvoiceNumber: c.Number, CustomerID: c.CustomerID,
		TotalCents: c.TotalCents, DocumentRef: c.DocumentRef}}, nil
}

// Evolve folds events into the state.
func Evolve(inv Invoice, events ...schemas.Event) Invoice {
	for _, e := range events {
		if e, ok := e.(schemas.InvoiceIssued); ok {
			inv = Invoice{Number: e.InvoiceNumber, CustomerID: e.CustomerID, TotalCents: e.TotalCents}
		}
	}
	return inv
}

// Migrations creates the billing schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{
		aggregate.Migration("billing", "invoices"),
		{Context: "billing", Version: 2, SQL: `
			CREATE SEQUENCE billing.invoice_numbers;
			CREATE TABLE billing.documents (
				order_id   text PRIMARY KEY,
				pdf        bytea NOT NULL,
				created_at timestamptz NOT NULL DEFAULT now())`},
	}
}

// DocumentRef is how an event names an order's invoice document.
func DocumentRef(orderID string) string { return "billing/documents/" + orderID }

// Service handles invoices.
type Service struct {
	pool     *pgxpool.Pool
	invoices *aggregate.Store[Invoice]
}

// NewService returns the billing service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{pool: pool, invoices: aggregate.NewStore[Invoice](pool, serde, "billing.invoices", Source)}
}

// Invoice returns an order's invoice; found is false before it is issued.
func (s *Service) Invoice(ctx context.Context, orderID string) (inv Invoice, found bool, err error) {
	inv, _, found, err = s.invoices.Load(ctx, orderID)
	return inv, found, err
}

// NextNumber allocates an invoice number, like INV-2026-000042. Numbers
// are unique; a crash may leave a gap.
func (s *Service) NextNumber(ctx context.Context, now time.Time) (string, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('billing.invoice_numbers')`).Scan(&n); err != nil {
		return "", fmt.Errorf("billing: next invoice number: %w", err)
	}
	return fmt.Sprintf("INV-%d-%06d", now.Year(), n), nil
}

// Issue stores the invoice's PDF and issues it, in one transaction of its
// own. Issuing an order's invoice again changes nothing.
func (s *Service) Issue(ctx context.Context, meta command.Meta, c Issue, pdf []byte) error {
	c.DocumentRef = DocumentRef(c.OrderID)
	_, err := aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		_, version, err := s.invoices.Apply(ctx, tx, c.OrderID, meta, aggregate.Rule(Decide, Evolve)(c))
		if err != nil || version != 1 {
			return command.Result{}, err
		}
		// version is 1 also when the invoice was issued already: its PDF stands.
		_, err = tx.Exec(ctx, `INSERT INTO billing.documents (order_id, pdf) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING`, c.OrderID, pdf)
		return command.Result{}, err
	})
	return err
}

// ErrNoDocument is a document reference that names nothing.
var ErrNoDocument = errors.New("no such invoice document")

// Document returns the PDF a DocumentRef names.
func (s *Service) Document(ctx context.Context, ref string) ([]byte, error) {
	var pdf []byte
	err := s.pool.QueryRow(ctx, `SELECT pdf FROM billing.documents WHERE 'billing/documents/' || order_id = $1`, ref).Scan(&pdf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", ref, ErrNoDocument)
	}
	return pdf, err
}
