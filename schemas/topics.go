package schemas

// Event-log topics, one per aggregate type, keyed by aggregate id. The names
// are contracts shared with other teams: a breaking change gets a new
// version suffix and a new topic, never an edit in place.
const (
	TopicCustomers    = "shop.customers.v1"
	TopicProducts     = "shop.catalog.products.v1"
	TopicStock        = "shop.inventory.stock.v1"
	TopicCarts        = "shop.carts.v1"
	TopicOrders       = "shop.orders.v1"
	TopicPayments     = "shop.payments.v1"
	TopicSepaRequests = "shop.payments.sepa-requests.v1"
	TopicInvoices     = "shop.billing.invoices.v1"
	TopicEmails       = "shop.notifications.emails.v1"
	TopicReviews      = "shop.reviews.v1"
)

// DLQSuffix names a topic's dead-letter topic: "<topic>.dlq".
const DLQSuffix = ".dlq"

// TopicSpec is how a topic of the event log is created.
type TopicSpec struct {
	Name       string
	Partitions int32
}

// DefaultPartitions is the partition count of every event-log topic but the
// SEPA request topic, which has exactly one so that one consumer at a time
// calls the bank.
const DefaultPartitions = 6

// Topics lists every event-log topic with its partition count. Retention is
// infinite for all of them: the log is the source of every replay.
func Topics() []TopicSpec {
	names := []string{TopicCustomers, TopicProducts, TopicStock, TopicCarts, TopicOrders,
		TopicPayments, TopicInvoices, TopicEmails, TopicReviews}
	specs := make([]TopicSpec, 0, len(names)+1)
	for _, n := range names {
		specs = append(specs, TopicSpec{Name: n, Partitions: DefaultPartitions})
	}
	return append(specs, TopicSpec{Name: TopicSepaRequests, Partitions: 1})
}
