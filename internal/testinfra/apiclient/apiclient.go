// Package apiclient is how tests call the shop's API as someone: as
// staff, by the API key a dev stack made (Staff), or as a customer who
// signed up and logged in (SignUp). Every harness (component tests,
// process tests, the fault matrix, the foreign clients' test) goes
// through it, so that authentication is written once.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"shopstream/internal/edge/auth"
)

// Staff is a client whose requests act as staff with key, unless they
// carry credentials of their own (or auth.HeaderAnonymous, to send none).
func Staff(key string) *http.Client {
	c := auth.StaffClient(key, nil)
	c.Timeout = 30 * time.Second
	return c
}

// Bearer is a client whose requests carry token.
func Bearer(token string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: auth.Transport{Header: "Authorization", Value: "Bearer " + token}}
}

// Customer is a customer who signed up and logged in.
type Customer struct {
	ID, Email, Password, Token string
}

// Client is a client acting as the customer.
func (c Customer) Client() *http.Client { return Bearer(c.Token) }

// Password is the password SignUp gives its customers.
const Password = "a password for the tests"

// SignUp signs a new customer up (a fresh email) at base, logs them in,
// and returns them.
func SignUp(ctx context.Context, base string) (Customer, error) {
	c := Customer{Email: uuid.NewString() + "@example.org", Password: Password}
	var created struct{ ID string }
	if err := call(ctx, base+"/customers", map[string]string{"email": c.Email, "name": "Fan", "password": c.Password}, http.StatusCreated, &created); err != nil {
		return Customer{}, fmt.Errorf("sign up: %w", err)
	}
	c.ID = created.ID
	tok, err := LogIn(ctx, base, c.Email, c.Password)
	if err != nil {
		return Customer{}, err
	}
	c.Token = tok
	return c, nil
}

// LogIn returns a customer's token.
func LogIn(ctx context.Context, base, email, password string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(ctx, base+"/auth/token", map[string]string{"email": email, "password": password}, http.StatusOK, &tok); err != nil {
		return "", fmt.Errorf("log in: %w", err)
	}
	return tok.AccessToken, nil
}

func call(ctx context.Context, url string, body any, want int, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, rb)
	}
	return json.Unmarshal(rb, out)
}
