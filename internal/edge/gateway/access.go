package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"shopstream/internal/edge/auth"
	"shopstream/internal/platform/password"
)

// Who may call a route: anyone, a customer (for their own data; staff
// too, on a customer's behalf), or staff only.
type access int

const (
	public access = iota
	customer
	staff
)

// routeAccess is each route's access. A route not listed is public.
var routeAccess = map[string]access{
	"POST /products":                                 staff,
	"POST /products/{id}/restock":                    staff,
	"POST /products/{id}/reviews":                    customer,
	"POST /carts/items":                              customer,
	"DELETE /carts/{customer_id}/items/{product_id}": customer,
	"POST /orders":                                   customer,
	"GET /orders/{id}":                               customer,
	"GET /customers/{id}/orders":                     customer,
	"DELETE /customers/{id}":                         customer,
}

type principalCtxKey struct{}

// principal is who the request acts as (zero for an anonymous one).
func principal(r *http.Request) (auth.Principal, bool) {
	p, ok := r.Context().Value(principalCtxKey{}).(auth.Principal)
	return p, ok
}

// authorize authenticates r and checks its route's access: 401 with
// WWW-Authenticate for missing or refused credentials, 403 for a role
// the route does not admit. Refused credentials are 401 on every route,
// public ones included: a client that sends a bad token wants to know.
// It returns the request carrying its principal, and false once it has
// answered.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, pattern string) (*http.Request, bool) {
	need := routeAccess[pattern]
	if g.d.Auth == nil {
		if need == public {
			return r, true
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "this instance authenticates no one")
		return r, false
	}
	p, err := g.d.Auth.Authenticate(r)
	var refused *auth.Error
	switch {
	case errors.As(err, &refused):
		unauthorized(w, r, "invalid_token", refused.Reason)
		return r, false
	case errors.Is(err, auth.ErrNoCredentials):
		if need != public {
			unauthorized(w, r, "", "log in (POST /auth/token) and send Authorization: Bearer <token>"+
				map[bool]string{true: ", or a staff API key in " + auth.HeaderAPIKey, false: ""}[need == staff])
			return r, false
		}
		return r, true
	case err != nil:
		writeError(w, r, g.log, err)
		return r, false
	}
	if need == staff && p.Role != auth.RoleStaff {
		writeProblem(w, r, http.StatusForbidden, "forbidden", "only staff may "+strings.ToLower(pattern))
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), principalCtxKey{}, p)), true
}

func unauthorized(w http.ResponseWriter, r *http.Request, code, detail string) {
	challenge := `Bearer realm="shopstream"`
	if code != "" {
		challenge += fmt.Sprintf(`, error=%q`, code)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeProblem(w, r, http.StatusUnauthorized, "unauthorized", detail)
}

// actingCustomer is the customer a customer route acts for: the caller
// when a customer (a customer_id it names must be its own: 403
// otherwise), the customer_id it names when staff (required: 422). It
// answers and returns false when refused.
func actingCustomer(w http.ResponseWriter, r *http.Request, named *string, name string) (string, bool) {
	p, _ := principal(r)
	switch p.Role {
	case auth.RoleCustomer:
		if named != nil && *named != p.Subject {
			writeProblem(w, r, http.StatusForbidden, "forbidden", "a customer acts only for themselves: "+name+" must be yours or left out")
			return "", false
		}
		return p.Subject, true
	case auth.RoleStaff:
		if named == nil {
			return "", required(w, r, field{name, false})
		}
		return *named, true
	}
	unauthorized(w, r, "", "log in first")
	return "", false
}

// mayRead says whether the caller may read what belongs to customerID:
// that customer, or staff.
func mayRead(r *http.Request, customerID string) bool {
	p, _ := principal(r)
	return p.Role == auth.RoleStaff || (p.Role == auth.RoleCustomer && p.Subject == customerID)
}

// scope names the caller for its idempotency keys: its principal, or for
// an anonymous caller (a sign-up) its address.
func scope(r *http.Request) string {
	if p, ok := principal(r); ok {
		return p.Scope()
	}
	return "anonymous:" + clientIP(r)
}

// clientIP is the address the request came from (the proxy's, behind
// one: X-Forwarded-For is not trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type loginRequest struct {
	Email    *string `json:"email"`
	Password *string `json:"password"`
}

// login answers POST /auth/token: a customer's email and password for a
// token (200), or 401 whether the email is unknown or the password wrong.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !decodeJSON(w, r, &req) || !required(w, r, field{"email", req.Email != nil}, field{"password", req.Password != nil}) {
		return
	}
	if g.d.Auth == nil || g.d.Login == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "this instance authenticates no one")
		return
	}
	id, ok, err := g.d.Login(r.Context(), *req.Email, password.Plain(*req.Password))
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	if !ok {
		unauthorized(w, r, "", "wrong email or password")
		return
	}
	tok, err := g.d.Auth.Issue(id)
	if err != nil {
		writeError(w, r, g.log, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tok)
}
