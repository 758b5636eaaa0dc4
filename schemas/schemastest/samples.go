// Package schemastest holds sample events for tests of every layer that
// moves events: one filled-in value of every event type of the catalog.
package schemastest

import (
	"time"

	"shopstream/schemas"
)

// Samples returns one event of every type in the catalog, every field set
// (optional fields once set, once nil across the samples).
func Samples() []schemas.Event {
	photo := "http://autresite.com/maillot.jpg"
	pdf := "invoices/o-1.pdf"
	key := "k-0190f5a0-0000-7000-8000-000000000001"
	return []schemas.Event{
		schemas.CustomerSignedUp{CustomerID: "c-1", Email: "zizou@example.org", Name: "Zinédine"},
		schemas.CustomerSignedUp{CustomerID: "c-2", Email: "pii:v1:bm9uY2VjaXBoZXJ0ZXh0", Name: "pii:v1:Y2lwaGVydGV4dA", PIIKeyID: &key},
		schemas.CustomerErased{CustomerID: "c-2", PIIKeyID: &key, ErasedAt: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)},
		schemas.CustomerErased{CustomerID: "c-1", ErasedAt: time.Date(2026, 12, 6, 9, 0, 1, 0, time.UTC)},
		schemas.ProductRegistered{ProductID: "p-1", Title: "Maillot de l'OM 93", PriceCents: 8999, Currency: "EUR", InitialStock: 1, PhotoURL: &photo},
		schemas.ProductRestocked{ProductID: "p-1", Quantity: 5},
		schemas.PhotoWasAdded{ProductID: "p-1", PhotoURL: photo},
		schemas.StockReserved{ProductID: "p-1", OrderID: "o-1", Quantity: 1, Remaining: 0},
		schemas.StockReservationRejected{ProductID: "p-1", OrderID: "o-2", Quantity: 1, Available: 0},
		schemas.StockReleased{ProductID: "p-1", OrderID: "o-1", Quantity: 1, Reason: "payment_failed"},
		schemas.StockReceived{ProductID: "p-1", Quantity: 20, Available: 20, CatalogVersion: 1},
		schemas.ProductSoldOut{ProductID: "p-1"},
		schemas.ItemAddedToCart{CustomerID: "c-1", ProductID: "p-1", Quantity: 2},
		schemas.ItemRemovedFromCart{CustomerID: "c-1", ProductID: "p-1"},
		schemas.CartCheckedOut{CustomerID: "c-1", OrderID: "o-1"},
		schemas.OrderPlaced{OrderID: "o-1", CustomerID: "c-1", PaymentMethod: "card",
			Items:      []schemas.OrderLine{{ProductID: "p-1", Quantity: 1, UnitPriceCents: 8999}, {ProductID: "p-2", Quantity: 3, UnitPriceCents: 100}},
			TotalCents: 9299},
		schemas.OrderConfirmed{OrderID: "o-1"},
		schemas.OrderCancelled{OrderID: "o-2", Reason: "out_of_stock"},
		schemas.PaymentRequested{OrderID: "o-1", Method: "sepa", AmountCents: 9299},
		schemas.PaymentSucceeded{OrderID: "o-1", Method: "sepa", AmountCents: 9299, ProviderReference: "bank-42"},
		schemas.PaymentFailed{OrderID: "o-3", Method: "card", Reason: "declined"},
		schemas.SepaTransferRequested{OrderID: "o-1", CustomerID: "c-1", AmountCents: 9299},
		schemas.InvoiceIssued{OrderID: "o-1", InvoiceNumber: "2026-000001", CustomerID: "c-1", TotalCents: 9299, DocumentRef: pdf},
		schemas.EmailRequested{OrderID: "o-1", To: "zizou@example.org", Subject: "Your invoice", Template: "invoice", AttachmentRef: &pdf},
		schemas.EmailRequested{OrderID: "o-4", To: "zizou@example.org", Subject: "Cancelled", Template: "cancelled"},
		schemas.EmailSent{OrderID: "o-1", To: "zizou@example.org", MessageID: "<m1@shop>", SentAt: time.Date(2026, 11, 27, 9, 0, 0, 123e6, time.UTC)},
		schemas.EmailRequested{OrderID: "o-5", To: "pii:v1:dG8", Subject: "Your invoice", Template: "invoice", PIIKeyID: &key},
		schemas.EmailSent{OrderID: "o-5", To: "pii:v1:dG8", MessageID: "<m5@shop>", SentAt: time.Date(2026, 11, 27, 9, 0, 1, 0, time.UTC), PIIKeyID: &key},
		schemas.ReviewAdded{ReviewID: "r-1", ProductID: "p-1", CustomerID: "c-1", Rating: 5, Comment: "Allez l'OM"},
	}
}
