package app

import (
	"log/slog"

	"shopstream/internal/platform/eventlog"
	"shopstream/processors/charging"
	"shopstream/processors/consumer"
	"shopstream/processors/email"
	"shopstream/processors/invoicing"
	"shopstream/processors/saga"
	"shopstream/processors/stockfeed"
	"shopstream/projectors/listing"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/schemas"
	"shopstream/schemas/asyncapi"
)

// writes are the event types each component appends (through its
// context's outbox), by the commands it runs. Events are written by the
// producers/<context> services; this says which component calls them.
var writes = map[string][]schemas.Event{
	Gateway: {schemas.CustomerSignedUp{}, schemas.ProductRegistered{}, schemas.ProductRestocked{},
		schemas.ItemAddedToCart{}, schemas.ItemRemovedFromCart{}, schemas.CartCheckedOut{},
		schemas.OrderPlaced{}, schemas.ReviewAdded{}},
	StockFeed: {schemas.StockReceived{}},
	Saga: {schemas.StockReserved{}, schemas.StockReservationRejected{}, schemas.StockReleased{}, schemas.ProductSoldOut{},
		schemas.OrderConfirmed{}, schemas.OrderCancelled{}, schemas.PaymentRequested{}, schemas.SepaTransferRequested{}},
	PaymentsCard: {schemas.PaymentSucceeded{}, schemas.PaymentFailed{}},
	PaymentsSepa: {schemas.PaymentSucceeded{}, schemas.PaymentFailed{}},
	Billing:      {schemas.InvoiceIssued{}, schemas.EmailRequested{}},
	Email:        {schemas.EmailSent{}},
}

// what each component does, for the operations' descriptions.
var flowDescriptions = map[string]string{
	Gateway:           "The HTTP API's commands.",
	StockFeed:         "Turns registrations and restocks into stock receipts.",
	Saga:              "The order saga: reserves stock, requests payment, confirms or cancels, compensates.",
	PaymentsCard:      "Charges cards through the PSP.",
	PaymentsSepa:      "Calls the SEPA bank (one active instance).",
	Billing:           "Invoices confirmed orders (PDF) and requests the invoice email.",
	Email:             "Sends requested emails within the provider's quota.",
	ProjectorProducts: "Folds into the products read model (MongoDB).",
	ProjectorOrders:   "Folds into the orders read model (MongoDB).",
}

// Flows is what every component reads and writes, taken from the same
// consumer configurations Run starts (groups and topics) and from writes.
func Flows() []asyncapi.Flow {
	discard := slog.New(slog.DiscardHandler)
	pay := charging.New(charging.Deps{Logger: discard})
	consumers := map[string]consumer.Config{
		StockFeed:    stockfeed.New(stockfeed.Deps{Logger: discard}).Config(nil),
		Saga:         saga.New(saga.Deps{Logger: discard}).Config(nil),
		PaymentsCard: pay.CardConfig(nil),
		PaymentsSepa: pay.SepaConfig(nil),
		Billing:      invoicing.New(invoicing.Deps{Logger: discard}).Config(nil),
		Email:        email.New(email.Deps{Logger: discard}).Config(nil),
	}
	var flows []asyncapi.Flow
	for _, c := range Components() {
		f := asyncapi.Flow{Component: c, Description: flowDescriptions[c]}
		for _, ev := range writes[c] {
			f.Writes = append(f.Writes, ev.EventType())
		}
		switch c {
		case ProjectorProducts:
			f.Group, f.Reads = products.Projection().Group(), products.Projection().Topics
		case ProjectorOrders:
			f.Group, f.Reads = orderviews.Projection().Group(), orderviews.Projection().Topics
		default:
			if cfg, ok := consumers[c]; ok {
				f.Group, f.Reads = cfg.Group, cfg.Topics
			}
		}
		if c == ProjectorProducts {
			flows = append(flows, f)
			f = asyncapi.Flow{Component: c, Group: listing.Projection().Group(), Reads: listing.Projection().Topics,
				Description: "Folds into the catalogue's listing (MongoDB): the order GET /products pages in."}
			flows = append(flows, f)
			f = asyncapi.Flow{Component: c, Group: listing.Heads().Group(), Reads: listing.Heads().Topics,
				Description: "Folds into the listing's heads (MongoDB): where GET /products' pages end."}
		}
		if c == Gateway {
			// The gateway's writes, and its stock watch: a group-less
			// reader of the stock topic from its end (sold-out push;
			// stockwatch.Hub.ClientOpts, held to this by the test).
			flows = append(flows, f)
			f = asyncapi.Flow{Component: c, Reads: []string{schemas.TopicStock},
				Description: "Pushes sold-out and restock notices to GET /products/{id}/events subscribers (SSE)."}
		}
		if len(f.Reads) > 0 || len(f.Writes) > 0 {
			flows = append(flows, f)
		}
	}
	return flows
}

// AsyncAPI is the AsyncAPI 3.0 document of the event log (JSON), generated
// from the schema catalogue, the components' flows and the header table.
func AsyncAPI() ([]byte, error) {
	cat, err := schemas.Load()
	if err != nil {
		return nil, err
	}
	var headers []asyncapi.Header
	for _, h := range eventlog.HeaderDocs() {
		headers = append(headers, asyncapi.Header{Name: h.Name, Meaning: h.Meaning, Always: h.Always, Rely: h.Rely})
	}
	return asyncapi.Document(asyncapi.Input{
		Catalog: cat, Topics: schemas.Topics(), Flows: Flows(), Headers: headers,
		Servers: []asyncapi.Server{{Name: "dev", Host: "127.0.0.1:9092", RegistryURL: "http://127.0.0.1:8081",
			Description: "`shop dev` / `shop infra` on a laptop, and the compose file's broker."}},
		DeadLetter: eventlog.DeadLetterTopic,
	})
}
