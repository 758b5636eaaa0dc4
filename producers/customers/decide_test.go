package customers

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

func TestDecide(t *testing.T) {
	ok := SignUp{CustomerID: "c", Email: " Zizou@Example.org ", Name: " Zinédine ", Password: "coupe du monde 98"}
	with := func(f func(*SignUp)) SignUp { c := ok; f(&c); return c }
	signedUp := []schemas.Event{schemas.CustomerSignedUp{CustomerID: "c", Email: "zizou@example.org", Name: "Zinédine"}}
	cases := []struct {
		name  string
		given []schemas.Event
		when  SignUp
		then  []schemas.Event
		err   error
		field string
	}{
		{name: "sign up", when: ok, then: signedUp},
		{name: "twice", given: signedUp, when: ok, err: command.ErrConflict},
		{name: "not an email", when: with(func(c *SignUp) { c.Email = "zizou" }), err: command.ErrInvalid, field: "email"},
		{name: "display name form", when: with(func(c *SignUp) { c.Email = "Zizou <z@example.org>" }), err: command.ErrInvalid, field: "email"},
		{name: "no name", when: with(func(c *SignUp) { c.Name = " " }), err: command.ErrInvalid, field: "name"},
		{name: "long name", when: with(func(c *SignUp) { c.Name = strings.Repeat("a", 201) }), err: command.ErrInvalid, field: "name"},
		{name: "short password", when: with(func(c *SignUp) { c.Password = "zidane" }), err: command.ErrInvalid, field: "password"},
		{name: "no password", when: with(func(c *SignUp) { c.Password = "" }), err: command.ErrInvalid, field: "password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decide(Evolve(Customer{}, c.given...), int64(len(c.given)), c.when)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			var fe *command.FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Fatalf("error %v does not name %s", err, c.field)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events %#v, want %#v", got, c.then)
			}
		})
	}
}

func TestDecideErase(t *testing.T) {
	key := "k-c"
	at := time.Date(2026, 12, 6, 9, 0, 0, 123456789, time.UTC)
	signedUp := schemas.CustomerSignedUp{CustomerID: "c", Email: "pii:v1:x", Name: "pii:v1:y", PIIKeyID: &key}
	for _, c := range []struct {
		name  string
		given []schemas.Event
		then  []schemas.Event
		err   error
	}{
		{name: "erase", given: []schemas.Event{signedUp},
			then: []schemas.Event{schemas.CustomerErased{CustomerID: "c", PIIKeyID: &key, ErasedAt: at.Truncate(time.Millisecond)}}},
		{name: "erase a v1 customer (no key)", given: []schemas.Event{schemas.CustomerSignedUp{CustomerID: "c", Email: "a@b.c", Name: "A"}},
			then: []schemas.Event{schemas.CustomerErased{CustomerID: "c", ErasedAt: at.Truncate(time.Millisecond)}}},
		{name: "erase twice", given: []schemas.Event{signedUp, schemas.CustomerErased{CustomerID: "c", PIIKeyID: &key}}},
		{name: "erase an unknown customer", err: command.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecideErase(Evolve(Customer{}, c.given...), int64(len(c.given)), Erase{CustomerID: "c", At: at})
			if !errors.Is(err, c.err) || !reflect.DeepEqual(got, c.then) {
				t.Fatalf("%#v, %v; want %#v, %v", got, err, c.then, c.err)
			}
		})
	}
	if s := Evolve(Customer{}, signedUp, schemas.CustomerErased{CustomerID: "c"}); s.Email != "" || s.Name != "" || !s.Erased || s.PIIKeyID != key {
		t.Fatalf("erased state %+v: personal fields must be gone, the key id kept", s)
	}
}
