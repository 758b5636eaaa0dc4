package reviews

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

func TestDecide(t *testing.T) {
	const customer = "368c748f-d636-4acb-a632-d5257ffb0764"
	ok := AddReview{ReviewID: "r", ProductID: "p", CustomerID: customer, Rating: 5, Comment: "Allez l'OM"}
	with := func(f func(*AddReview)) AddReview { c := ok; f(&c); return c }
	cases := []struct {
		name  string
		when  AddReview
		then  []schemas.Event
		field string
	}{
		{name: "add", when: ok, then: []schemas.Event{schemas.ReviewAdded{ReviewID: "r", ProductID: "p", CustomerID: customer, Rating: 5, Comment: "Allez l'OM"}}},
		{name: "rating 0", when: with(func(c *AddReview) { c.Rating = 0 }), field: "rating"},
		{name: "rating 6", when: with(func(c *AddReview) { c.Rating = 6 }), field: "rating"},
		{name: "customer not a uuid", when: with(func(c *AddReview) { c.CustomerID = "bob" }), field: "customer_id"},
		{name: "comment too long", when: with(func(c *AddReview) { c.Comment = strings.Repeat("x", 2001) }), field: "comment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decide(ProductReviews{}, c.when)
			var fe *command.FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, command.ErrInvalid)) {
				t.Fatalf("error %v does not name field %s", err, c.field)
			}
			if c.field == "" && err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events\n got %#v\nwant %#v", got, c.then)
			}
		})
	}
	if s := Evolve(ProductReviews{}, ok2(t), ok2(t)); s.Count != 2 {
		t.Fatalf("count %d, want 2", s.Count)
	}
}

func ok2(t *testing.T) schemas.Event {
	t.Helper()
	return schemas.ReviewAdded{ReviewID: "r", Rating: 3}
}
