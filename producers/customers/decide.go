// Package customers is the write service of customer accounts. It turns
// sign-ups into CustomerSignedUp events on shop.customers.v1 through the
// PostgreSQL write model (schema "customers", where a unique index on the
// lower-cased email makes a second account with the same email a conflict,
// even under concurrent sign-ups) and the transactional outbox.
package customers

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/password"
	"shopstream/schemas"
)

// Customer is the write-side state of a customer. Erasure empties the
// personal fields (omitted, so the unique index on the email counts it no
// more).
type Customer struct {
	Email    string `json:"email,omitempty"` // lower-cased; indexed unique
	Name     string `json:"name,omitempty"`
	PIIKeyID string `json:"pii_key_id,omitempty"` // the key its events' personal fields are sealed under
	Erased   bool   `json:"erased,omitempty"`
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

// Erase erases a customer's personal data at At (GDPR art. 17): its key
// is destroyed, its account closed.
type Erase struct {
	CustomerID string
	At         time.Time
}

// CommandName names the command on the bus.
func (Erase) CommandName() string { return "customers.Erase" }

// DecideErase is the pure rule of erasure: an unknown customer is not
// found; an erased one stays erased (nothing more to do).
func DecideErase(c Customer, version int64, cmd Erase) ([]schemas.Event, error) {
	switch {
	case version == 0:
		return nil, fmt.Errorf("customer %s: %w", cmd.CustomerID, command.ErrNotFound)
	case c.Erased:
		return nil, nil
	}
	e := schemas.CustomerErased{CustomerID: cmd.CustomerID, ErasedAt: cmd.At.UTC().Truncate(time.Millisecond)}
	if c.PIIKeyID != "" {
		e.PIIKeyID = &c.PIIKeyID
	}
	return []schemas.Event{e}, nil
}

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
		switch e := e.(type) {
		case schemas.CustomerSignedUp:
			c = Customer{Email: e.Email, Name: e.Name}
			if e.PIIKeyID != nil {
				c.PIIKeyID = *e.PIIKeyID
			}
		case schemas.CustomerErased:
			c = Customer{PIIKeyID: c.PIIKeyID, Erased: true}
		}
	}
	return c
}
