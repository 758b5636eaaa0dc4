package schemas

import "time"

// Event is the payload of one record of the event log. Each implementation is
// the Go form of the current version of one Avro record schema; the `avro`
// field tags name the Avro fields.
type Event interface {
	// EventType is the Avro full name, e.g. "shop.catalog.ProductRegistered".
	EventType() string
}

// CustomerSignedUp: shop.customers.v1.
type CustomerSignedUp struct {
	CustomerID string `avro:"customer_id"`
	Email      string `avro:"email"` // ciphertext when PIIKeyID is set
	Name       string `avro:"name"`  // ciphertext when PIIKeyID is set
	// PIIKeyID is the key the personal fields are encrypted under (v2;
	// nil in v1 records, whose fields are plain text).
	PIIKeyID *string `avro:"pii_key_id"`
}

// CustomerErased: shop.customers.v1. The customer's key is destroyed.
type CustomerErased struct {
	CustomerID string    `avro:"customer_id"`
	PIIKeyID   *string   `avro:"pii_key_id"`
	ErasedAt   time.Time `avro:"erased_at"`
}

// ProductRegistered (v3): shop.catalog.products.v1.
type ProductRegistered struct {
	ProductID    string  `avro:"product_id"`
	Title        string  `avro:"title"`
	PriceCents   int64   `avro:"price_cents"`
	Currency     string  `avro:"currency"`
	InitialStock int32   `avro:"quantity"`
	PhotoURL     *string `avro:"photo"`
}

// ProductRestocked: shop.catalog.products.v1.
type ProductRestocked struct {
	ProductID string `avro:"product_id"`
	Quantity  int32  `avro:"quantity"`
}

// PhotoWasAdded: shop.catalog.products.v1.
type PhotoWasAdded struct {
	ProductID string `avro:"product_id"`
	PhotoURL  string `avro:"photo_url"`
}

// StockReserved: shop.inventory.stock.v1.
type StockReserved struct {
	ProductID string `avro:"product_id"`
	OrderID   string `avro:"order_id"`
	Quantity  int32  `avro:"quantity"`
	Remaining int32  `avro:"remaining"`
}

// StockReservationRejected: shop.inventory.stock.v1.
type StockReservationRejected struct {
	ProductID string `avro:"product_id"`
	OrderID   string `avro:"order_id"`
	Quantity  int32  `avro:"quantity"`
	Available int32  `avro:"available"`
}

// StockReleased: shop.inventory.stock.v1.
type StockReleased struct {
	ProductID string `avro:"product_id"`
	OrderID   string `avro:"order_id"`
	Quantity  int32  `avro:"quantity"`
	Reason    string `avro:"reason"`
}

// StockReceived: shop.inventory.stock.v1.
type StockReceived struct {
	ProductID      string `avro:"product_id"`
	Quantity       int32  `avro:"quantity"`
	Available      int32  `avro:"available"`
	CatalogVersion int64  `avro:"catalog_version"`
}

// ProductSoldOut: shop.inventory.stock.v1.
type ProductSoldOut struct {
	ProductID string `avro:"product_id"`
}

// ItemAddedToCart: shop.carts.v1.
type ItemAddedToCart struct {
	CustomerID string `avro:"customer_id"`
	ProductID  string `avro:"product_id"`
	Quantity   int32  `avro:"quantity"`
}

// ItemRemovedFromCart: shop.carts.v1.
type ItemRemovedFromCart struct {
	CustomerID string `avro:"customer_id"`
	ProductID  string `avro:"product_id"`
}

// CartCheckedOut: shop.carts.v1.
type CartCheckedOut struct {
	CustomerID string `avro:"customer_id"`
	OrderID    string `avro:"order_id"`
}

// OrderLine is one line of an OrderPlaced event.
type OrderLine struct {
	ProductID      string `avro:"product_id"`
	Quantity       int32  `avro:"quantity"`
	UnitPriceCents int64  `avro:"unit_price_cents"`
}

// OrderPlaced: shop.orders.v1.
type OrderPlaced struct {
	OrderID       string      `avro:"order_id"`
	CustomerID    string      `avro:"customer_id"`
	PaymentMethod string      `avro:"payment_method"`
	Items         []OrderLine `avro:"items"`
	TotalCents    int64       `avro:"total_cents"`
}

// OrderConfirmed: shop.orders.v1.
type OrderConfirmed struct {
	OrderID string `avro:"order_id"`
}

// OrderCancelled: shop.orders.v1.
type OrderCancelled struct {
	OrderID string `avro:"order_id"`
	Reason  string `avro:"reason"`
}

// PaymentRequested: shop.payments.v1.
type PaymentRequested struct {
	OrderID     string `avro:"order_id"`
	Method      string `avro:"method"`
	AmountCents int64  `avro:"amount_cents"`
	// ExpiresAt is the saga's deadline for the payment's outcome (v2; nil
	// in v1 records).
	ExpiresAt *time.Time `avro:"expires_at"`
}

// PaymentSucceeded: shop.payments.v1.
type PaymentSucceeded struct {
	OrderID           string `avro:"order_id"`
	Method            string `avro:"method"`
	AmountCents       int64  `avro:"amount_cents"`
	ProviderReference string `avro:"provider_reference"`
}

// PaymentFailed: shop.payments.v1.
type PaymentFailed struct {
	OrderID string `avro:"order_id"`
	Method  string `avro:"method"`
	Reason  string `avro:"reason"`
}

// SepaTransferRequested: shop.payments.sepa-requests.v1.
type SepaTransferRequested struct {
	OrderID     string `avro:"order_id"`
	CustomerID  string `avro:"customer_id"`
	AmountCents int64  `avro:"amount_cents"`
}

// InvoiceIssued: shop.billing.invoices.v1.
type InvoiceIssued struct {
	OrderID       string `avro:"order_id"`
	InvoiceNumber string `avro:"invoice_number"`
	CustomerID    string `avro:"customer_id"`
	TotalCents    int64  `avro:"total_cents"`
	DocumentRef   string `avro:"document_ref"`
}

// EmailRequested: shop.notifications.emails.v1.
type EmailRequested struct {
	OrderID       string  `avro:"order_id"`
	To            string  `avro:"to"` // ciphertext when PIIKeyID is set
	Subject       string  `avro:"subject"`
	Template      string  `avro:"template"`
	AttachmentRef *string `avro:"attachment_ref"`
	PIIKeyID      *string `avro:"pii_key_id"` // v2; nil in v1 records
}

// EmailSent: shop.notifications.emails.v1.
type EmailSent struct {
	OrderID   string    `avro:"order_id"`
	To        string    `avro:"to"` // ciphertext when PIIKeyID is set
	MessageID string    `avro:"message_id"`
	SentAt    time.Time `avro:"sent_at"`
	PIIKeyID  *string   `avro:"pii_key_id"` // v2; nil in v1 records
}

// ReviewAdded: shop.reviews.v1.
type ReviewAdded struct {
	ReviewID   string `avro:"review_id"`
	ProductID  string `avro:"product_id"`
	CustomerID string `avro:"customer_id"`
	Rating     int32  `avro:"rating"`
	Comment    string `avro:"comment"`
}

func (CustomerSignedUp) EventType() string         { return "shop.customers.CustomerSignedUp" }
func (CustomerErased) EventType() string           { return "shop.customers.CustomerErased" }
func (ProductRegistered) EventType() string        { return "shop.catalog.ProductRegistered" }
func (ProductRestocked) EventType() string         { return "shop.catalog.ProductRestocked" }
func (PhotoWasAdded) EventType() string            { return "shop.catalog.PhotoWasAdded" }
func (StockReserved) EventType() string            { return "shop.inventory.StockReserved" }
func (StockReservationRejected) EventType() string { return "shop.inventory.StockReservationRejected" }
func (StockReleased) EventType() string            { return "shop.inventory.StockReleased" }
func (StockReceived) EventType() string            { return "shop.inventory.StockReceived" }
func (CartCheckedOut) EventType() string           { return "shop.carts.CartCheckedOut" }
func (ProductSoldOut) EventType() string           { return "shop.inventory.ProductSoldOut" }
func (ItemAddedToCart) EventType() string          { return "shop.carts.ItemAddedToCart" }
func (ItemRemovedFromCart) EventType() string      { return "shop.carts.ItemRemovedFromCart" }
func (OrderPlaced) EventType() string              { return "shop.orders.OrderPlaced" }
func (OrderConfirmed) EventType() string           { return "shop.orders.OrderConfirmed" }
func (OrderCancelled) EventType() string           { return "shop.orders.OrderCancelled" }
func (PaymentRequested) EventType() string         { return "shop.payments.PaymentRequested" }
func (PaymentSucceeded) EventType() string         { return "shop.payments.PaymentSucceeded" }
func (PaymentFailed) EventType() string            { return "shop.payments.PaymentFailed" }
func (SepaTransferRequested) EventType() string    { return "shop.payments.SepaTransferRequested" }
func (InvoiceIssued) EventType() string            { return "shop.billing.InvoiceIssued" }
func (EmailRequested) EventType() string           { return "shop.notifications.EmailRequested" }
func (EmailSent) EventType() string                { return "shop.notifications.EmailSent" }
func (ReviewAdded) EventType() string              { return "shop.reviews.ReviewAdded" }
