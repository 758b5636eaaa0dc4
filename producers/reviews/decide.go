// Package reviews is the write service of product reviews. It turns review
// commands into ReviewAdded events on shop.reviews.v1, keyed by product id,
// through the PostgreSQL write model (schema "reviews": one aggregate per
// product holding its reviews so far) and the transactional outbox.
package reviews

import (
	"unicode/utf8"

	"github.com/google/uuid"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// ProductReviews is the write-side state of a product's reviews.
type ProductReviews struct {
	Count int64 `json:"count"`
}

// AddReview rates a product.
type AddReview struct {
	ReviewID   string
	ProductID  string
	CustomerID string
	Rating     int
	Comment    string
}

// MaxComment is the longest comment accepted, in characters.
const MaxComment = 2000

// CommandName names the command on the bus.
func (AddReview) CommandName() string { return "reviews.AddReview" }

// Validate checks the fields on their own.
func (c AddReview) Validate() error {
	switch {
	case uuid.Validate(c.CustomerID) != nil:
		return command.Invalid("customer_id", "must be a UUID")
	case c.Rating < 1 || c.Rating > 5:
		return command.Invalid("rating", "must be an integer from 1 to 5")
	case utf8.RuneCountInString(c.Comment) > MaxComment:
		return command.Invalid("comment", "must be at most 2000 characters")
	}
	return nil
}

// Decide is the pure rule of reviews.
func Decide(_ ProductReviews, cmd AddReview) ([]schemas.Event, error) {
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	return []schemas.Event{schemas.ReviewAdded{
		ReviewID: cmd.ReviewID, ProductID: cmd.ProductID, CustomerID: cmd.CustomerID,
		Rating: int32(cmd.Rating), Comment: cmd.Comment,
	}}, nil
}

// Evolve folds events into the state.
func Evolve(s ProductReviews, events ...schemas.Event) ProductReviews {
	for _, e := range events {
		if _, ok := e.(schemas.ReviewAdded); ok {
			s.Count++
		}
	}
	return s
}
