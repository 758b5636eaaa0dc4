// Package customers is the write service of customer accounts. It turns
// sign-ups into CustomerSignedUp events on shop.customers.v1 through the
// PostgreSQL write model (schema "customers", where a unique index on the
// lower-cased email makes a second account with the same email a conflict,
// even under concurrent sign-ups) and the transactional outbox.
package customers

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/password"
	"shopstream/schemas"
)

// Customer is the write-side state of a customer.
type Customer struct {
	Email string `json:"email"` // lower-cased; indexed unique
	Name  string `json:"name"`
}

// SignUp creates a customer account, with the password the customer logs
// in with (kept as an argon2id hash beside the account, never in an event).
type SignUp struct {
	CustomerID string
	Email      string
	Name       string
	Password   password.Plain
}

// CommandName names the command on the bus.
func (SignUp) CommandName() string { return "customers.SignUp" }

// MaxName is the longest name accepted, in characters.
const MaxName = 200

// Decide is the pure rule of sign-up. Email uniqueness across customers is
// not a rule of one aggregate: the database enforces it.
func Decide(_ Customer, version int64, cmd SignUp) ([]schemas.Event, error) {
	if version > 0 {
		return nil, command.ErrConflict
	}
	email := strings.ToLower(strings.TrimSpace(cmd.Email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return nil, command.Invalid("email", "must be an email address like name@example.org")
	}
	if why := password.Validate(string(cmd.Password)); why != "" {
		return nil, command.Invalid("password", why)
	}
	name := strings.TrimSpace(cmd.Name)
	switch {
	case name == "":
		return nil, command.Invalid("name", "must not be empty")
	case utf8.RuneCountInString(name) > MaxName:
		return nil, command.Invalid("name", "must be at most 200 characters")
	}
	return []schemas.Event{schemas.CustomerSignedUp{CustomerID: cmd.CustomerID, Email: email, Name: name}}, nil
}

// Evolve folds events into the state.
func Evolve(c Customer, events ...schemas.Event) Customer {
	for _, e := range events {
		if e, ok := e.(schemas.CustomerSignedUp); ok {
			c = Customer{Email: e.Email, Name: e.Name}
		}
	}
	return c
}
