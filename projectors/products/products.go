// Package products projects the catalogue, the stock and the reviews into
// the products read model: one MongoDB document per product with its
// current title, price, photo, stock, rating (average and count) and
// latest reviews. It consumes shop.catalog.products.v1,
// shop.inventory.stock.v1 and shop.reviews.v1 (all keyed by product id) in
// the consumer group shop.projector.products.v<N>. The stock is the
// catalogue's units until the inventory's first event for the product;
// from then on it is the inventory's available units.
//
// Apply is a pure fold. Each document remembers, per source stream, the
// highest aggregate version it has applied, and skips an event at or below
// it: replays and redeliveries leave the document unchanged.
package products

import (
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"time"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/listing"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Version of the projection; bump it to rebuild from the log on purpose.
const Version = 3

// LatestReviews is how many reviews a document keeps, newest first.
const LatestReviews = 10

// View is the read-model document of a product.
type View struct {
	Registered  bool     `bson:"registered"`
	Title       string   `bson:"title"`
	PriceCents  int64    `bson:"price_cents"`
	Currency    string   `bson:"currency"`
	Photo       string   `bson:"photo"`
	Stock       int64    `bson:"stock"`
	SoldOut     bool     `bson:"sold_out"`
	RatingSum   int64    `bson:"rating_sum"`
	RatingCount int64    `bson:"rating_count"`
	Reviews     []Review `bson:"reviews"`
	// Listed is where the registration folded is in the log: its entry
	// in the listing (a registration published twice has two; the page
	// shows this one).
	Listed *listing.Position `bson:"listed"`
	// Block is Listed's block (listing.Position.Block), at the top level:
	// a page reads the products of a block by equality on it, which
	// FerretDB pushes down (it pushes down no nested path).
	Block   int64          `bson:"listed_block"`
	Applied runner.Applied `bson:"applied"`
}

// Review is one review as shown with a product.
type Review struct {
	CustomerID string    `bson:"customer_id"`
	Rating     int32     `bson:"rating"`
	Comment    string    `bson:"comment"`
	At         time.Time `bson:"at"`
}

// stream names the aggregate stream a topic carries for this projection.
var streams = map[string]string{
	schemas.TopicProducts: "product",
	schemas.TopicReviews:  "reviews",
	schemas.TopicStock:    "stock",
}

// Projection is the products projection.
func Projection() runner.Projection[View] {
	return runner.Projection[View]{
		Name:    "products",
		Version: Version,
		Topics:  []string{schemas.TopicProducts, schemas.TopicStock, schemas.TopicReviews},
		DocID:   func(env eventlog.Envelope) string { return env.Meta.AggregateID },
		Apply:   Apply,
		// A product's document is created by its registration, the first
		// event of its catalogue stream.
		Creates: func(env eventlog.Envelope) bool {
			return env.Topic == schemas.TopicProducts && env.Meta.AggregateVersion == 1
		},
		Indexes:  []mongo.IndexModel{{Keys: bson.D{{Key: "listed_block", Value: 1}}}},
		Readable: bson.E{Key: "registered", Value: true},
	}
}

// Apply folds one event into a product document.
func Apply(v View, env eventlog.Envelope) View {
	stream, ok := streams[env.Topic]
	if !ok {
		return v
	}
	fromInventory := v.Applied["stock"] > 0
	if v.Applied, ok = v.Applied.Record(stream, env.Meta.AggregateVersion); !ok {
		return v
	}
	switch e := env.Event.(type) {
	case schemas.ProductRegistered:
		v.Registered = true
		pos := listing.PositionOf(env)
		v.Listed, v.Block = &pos, pos.Block()
		v.Title, v.PriceCents, v.Currency = e.Title, e.PriceCents, e.Currency
		if !fromInventory {
			v.Stock = int64(e.InitialStock)
		}
		if e.PhotoURL != nil {
			v.Photo = *e.PhotoURL
		}
	case schemas.ProductRestocked:
		if !fromInventory {
			v.Stock += int64(e.Quantity)
		}
	case schemas.StockReceived:
		v.Stock = int64(e.Available)
	case schemas.StockReserved:
		v.Stock = int64(e.Remaining)
	case schemas.StockReleased:
		v.Stock += int64(e.Quantity)
	case schemas.PhotoWasAdded:
		v.Photo = e.PhotoURL
	case schemas.ReviewAdded:
		v.RatingSum += int64(e.Rating)
		v.RatingCount++
		r := Review{CustomerID: e.CustomerID, Rating: e.Rating, Comment: e.Comment, At: env.Meta.OccurredAt.UTC().Truncate(time.Millisecond)}
		v.Reviews = append([]Review{r}, v.Reviews[:min(len(v.Reviews), LatestReviews-1)]...)
	}
	v.SoldOut = v.Registered && v.Stock <= 0
	return v
}

// Average is the mean rating, or nil without reviews.
func (v View) Average() *float64 {
	if v.RatingCount == 0 {
		return nil
	}
	a := float64(v.RatingSum) / float64(v.RatingCount)
	return &a
}
