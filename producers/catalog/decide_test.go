package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

func TestDecide(t *testing.T) {
	photo := "http://autresite.com/maillot.jpg"
	registered := []schemas.Event{schemas.ProductRegistered{ProductID: "p", Title: "Maillot de l'OM 93", PriceCents: 8999, Currency: "EUR", InitialStock: 1, PhotoURL: &photo}}
	register := RegisterProduct{ProductID: "p", Title: "  Maillot de l'OM 93 ", PriceCents: 8999, Quantity: 1, Photo: photo}
	with := func(f func(*RegisterProduct)) RegisterProduct { c := register; f(&c); return c }
	cases := []struct {
		name  string
		given []schemas.Event
		when  Command
		then  []schemas.Event
		err   error
		field string
	}{
		{name: "register", when: register, then: registered},
		{name: "register without photo", when: with(func(c *RegisterProduct) { c.Photo = "" }),
			then: []schemas.Event{schemas.ProductRegistered{ProductID: "p", Title: "Maillot de l'OM 93", PriceCents: 8999, Currency: "EUR", InitialStock: 1}}},
		{name: "register twice", given: registered, when: register, err: command.ErrConflict},
		{name: "empty title", when: with(func(c *RegisterProduct) { c.Title = "  " }), err: command.ErrInvalid, field: "title"},
		{name: "long title", when: with(func(c *RegisterProduct) { c.Title = strings.Repeat("é", 201) }), err: command.ErrInvalid, field: "title"},
		{name: "free", when: with(func(c *RegisterProduct) { c.PriceCents = 0 }), err: command.ErrInvalid, field: "price_cents"},
		{name: "negative quantity", when: with(func(c *RegisterProduct) { c.Quantity = -1 }), err: command.ErrInvalid, field: "quantity"},
		{name: "photo not a URL", when: with(func(c *RegisterProduct) { c.Photo = "maillot.jpg" }), err: command.ErrInvalid, field: "photo"},
		{name: "photo ftp", when: with(func(c *RegisterProduct) { c.Photo = "ftp://x/y.jpg" }), err: command.ErrInvalid, field: "photo"},
		{name: "restock", given: registered, when: RestockProduct{ProductID: "p", Quantity: 5},
			then: []schemas.Event{schemas.ProductRestocked{ProductID: "p", Quantity: 5}}},
		{name: "restock unknown", when: RestockProduct{ProductID: "p", Quantity: 5}, err: command.ErrNotFound},
		{name: "restock zero", given: registered, when: RestockProduct{ProductID: "p"}, err: command.ErrInvalid, field: "quantity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := Evolve(Product{}, c.given...)
			got, err := Decide(state, int64(len(c.given)), c.when)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			var fe *command.FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Fatalf("error %v does not name field %s", err, c.field)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events\n got %#v\nwant %#v", got, c.then)
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	p := Evolve(Product{},
		schemas.ProductRegistered{ProductID: "p", Title: "T", PriceCents: 5, InitialStock: 2},
		schemas.ProductRestocked{ProductID: "p", Quantity: 3},
		schemas.PhotoWasAdded{ProductID: "p", PhotoURL: "http://x/y"})
	want := Product{Title: "T", PriceCents: 5, Stock: 5, Photo: "http://x/y"}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}
