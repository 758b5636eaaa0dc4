// Package auth tells who a request to the shop's API acts as: a customer,
// by a short-lived token the shop signed when the customer logged in (or
// one an external OpenID Connect issuer signed, verified against its
// JWKS), or staff, by an API key. Tokens are JWTs (golang-jwt/jwt/v5);
// the shop's own are HMAC-SHA256 signed.
//
// Guarantees: a token is accepted only with a valid signature by a key
// this shop trusts, an algorithm of that key's kind (no "none", no HMAC
// verified with a public key), an expiry in the future and, for the
// shop's own, its issuer. A staff key is compared by its SHA-256 in
// constant time and is never kept or shown in clear: a principal names
// it by a short fingerprint. Nothing here logs a token or a key.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Role is what a principal may do.
type Role string

// The roles.
const (
	RoleCustomer Role = "customer" // their own cart, orders and reviews
	RoleStaff    Role = "staff"    // the catalogue and the back office, and any customer's data
)

// Principal is who a request acts as.
type Principal struct {
	// Subject is the customer's id for a customer; for staff, the
	// subject of their token or "key-<fingerprint>" for an API key.
	Subject string
	Role    Role
}

// Scope names the principal for what it owns apart from other callers
// (its idempotency keys): "customer:<id>" or "staff:<subject>".
func (p Principal) Scope() string { return string(p.Role) + ":" + p.Subject }

// Issuer is the iss claim of the shop's own tokens.
const Issuer = "shopstream"

// DefaultTTL is how long a token the shop issues lives.
const DefaultTTL = 15 * time.Minute

// MinSecret is the shortest token secret accepted, in bytes.
const MinSecret = 32

// HeaderAPIKey carries a staff API key.
const HeaderAPIKey = "X-API-Key"

// Config is what an Authenticator trusts.
type Config struct {
	// Secret signs and verifies the shop's own tokens (HMAC-SHA256), at
	// least MinSecret bytes. Every gateway instance needs the same one.
	Secret []byte
	// TTL is the lifetime of the tokens Issue makes; 0 is DefaultTTL.
	TTL time.Duration
	// StaffKeys are the staff's API keys (header X-API-Key).
	StaffKeys []string
	// JWKSURL, when set, is an external OpenID Connect issuer's key set:
	// its tokens are accepted too, if they carry Issuer as iss (and
	// Audience in aud, when set). Their sub is the customer's id, and a
	// "shop_role" claim of "staff" makes them staff.
	JWKSURL           string
	ExternalIssuer    string
	ExternalAudience  string
	ExternalRoleClaim string // default "shop_role"
}

// Authenticator verifies requests' credentials and issues customers'
// tokens.
type Authenticator struct {
	secret   []byte
	ttl      time.Duration
	staff    staffKeys
	external keyfunc.Keyfunc // nil without JWKSURL
	cfg      Config
	now      func() time.Time
}

// New returns an Authenticator; with cfg.JWKSURL it fetches that key set
// now (and refreshes it in the background until ctx ends).
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if len(cfg.Secret) < MinSecret {
		return nil, fmt.Errorf("auth: the token secret must be at least %d bytes, got %d", MinSecret, len(cfg.Secret))
	}
	if placeholder(string(cfg.Secret)) {
		return nil, errors.New("auth: the token secret is the deploy files' placeholder: set a random one (openssl rand -base64 32)")
	}
	a := &Authenticator{secret: cfg.Secret, ttl: cfg.TTL, staff: hashKeys(cfg.StaffKeys), cfg: cfg, now: time.Now}
	if a.ttl <= 0 {
		a.ttl = DefaultTTL
	}
	for _, k := range cfg.StaffKeys {
		if len(k) < 16 {
			return nil, errors.New("auth: a staff key must be at least 16 characters")
		}
		if placeholder(k) {
			return nil, errors.New("auth: a staff key is the deploy files' placeholder: set a random one")
		}
	}
	if cfg.JWKSURL != "" {
		if cfg.ExternalIssuer == "" || cfg.ExternalAudience == "" {
			// Without the audience, a token the issuer made for any other
			// application of it would be accepted here.
			return nil, errors.New("auth: an external JWKS needs the issuer and the audience its tokens must carry")
		}
		kf, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
		}
		a.external = kf
		if a.cfg.ExternalRoleClaim == "" {
			a.cfg.ExternalRoleClaim = "shop_role"
		}
	}
	return a, nil
}

// Token is what a log-in answers (RFC 6749 §5.1).
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"` // seconds
}

// Issue makes a customer's token.
func (a *Authenticator) Issue(customerID string) (Token, error) {
	now := a.now()
	claims := jwt.RegisteredClaims{Issuer: Issuer, Subject: customerID, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl))}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, shopClaims{RegisteredClaims: claims, Role: RoleCustomer}).SignedString(a.secret)
	if err != nil {
		return Token{}, fmt.Errorf("auth: sign: %w", err)
	}
	return Token{AccessToken: s, TokenType: "Bearer", ExpiresIn: int(a.ttl.Seconds())}, nil
}

type shopClaims struct {
	jwt.RegisteredClaims
	Role Role `json:"shop_role,omitempty"`
}

// ErrNoCredentials is a request that sent none.
var ErrNoCredentials = errors.New("no credentials")

// Error is credentials that were sent and refused; Reason says why, for
// the 401 problem (never the credentials themselves).
type Error struct{ Reason string }

func (e *Error) Error() string { return "credentials refused: " + e.Reason }

// Authenticate returns who r acts as: ErrNoCredentials when it sent
// neither an Authorization header nor an API key, an *Error when what it
// sent is refused.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	key, authz := r.Header.Get(HeaderAPIKey), r.Header.Get("Authorization")
	switch {
	case key != "" && authz != "":
		return Principal{}, &Error{"send either an API key or a bearer token, not both"}
	case key != "":
		return a.staffKey(key)
	case authz == "":
		return Principal{}, ErrNoCredentials
	}
	scheme, token, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, &Error{"the Authorization header must be \"Bearer <token>\""}
	}
	return a.verify(strings.TrimSpace(token))
}

func (a *Authenticator) staffKey(key string) (Principal, error) {
	found, ok := a.staff.lookup(key)
	if !ok {
		return Principal{}, &Error{"unknown API key"}
	}
	return Principal{Subject: found, Role: RoleStaff}, nil
}

// staffKeys are staff API keys by their SHA-256, each to its fingerprint
// (what logs name it by).
type staffKeys map[[32]byte]string

func hashKeys(keys []string) staffKeys {
	s := staffKeys{}
	for _, k := range keys {
		sum := sha256.Sum256([]byte(k))
		s[sum] = "key-" + hex.EncodeToString(sum[:4])
	}
	return s
}

// lookup finds key's fingerprint, comparing its SHA-256 with every key's
// in constant time.
func (s staffKeys) lookup(key string) (string, bool) {
	sum := sha256.Sum256([]byte(key))
	found := ""
	for k, fp := range s {
		if subtle.ConstantTimeCompare(k[:], sum[:]) == 1 {
			found = fp
		}
	}
	return found, found != ""
}

// StaffKeyCheck tells whether a key is one of keys, compared as the
// Authenticator compares staff keys (SHA-256, constant time), for what
// checks staff outside the gateway (the admin listener's console).
func StaffKeyCheck(keys []string) func(key string) bool {
	s := hashKeys(keys)
	return func(key string) bool {
		_, ok := s.lookup(key)
		return ok
	}
}

func (a *Authenticator) verify(token string) (Principal, error) {
	var c shopClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(Issuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now))
	if err == nil {
		if c.Subject == "" {
			return Principal{}, &Error{"the token names no subject"}
		}
		return Principal{Subject: c.Subject, Role: RoleCustomer}, nil
	}
	if a.external == nil || !errors.Is(err, jwt.ErrTokenSignatureInvalid) && !errors.Is(err, jwt.ErrTokenUnverifiable) &&
		!errors.Is(err, jwt.ErrTokenInvalidIssuer) {
		return Principal{}, &Error{reason(err)}
	}
	return a.verifyExternal(token)
}

func (a *Authenticator) verifyExternal(token string) (Principal, error) {
	claims := jwt.MapClaims{}
	opts := []jwt.ParserOption{jwt.WithIssuer(a.cfg.ExternalIssuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(a.now),
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"})}
	if a.cfg.ExternalAudience != "" {
		opts = append(opts, jwt.WithAudience(a.cfg.ExternalAudience))
	}
	if _, err := jwt.ParseWithClaims(token, claims, a.external.Keyfunc, opts...); err != nil {
		return Principal{}, &Error{reason(err)}
	}
	sub, _ := claims.GetSubject()
	if sub == "" {
		return Principal{}, &Error{"the token names no subject"}
	}
	role := RoleCustomer
	if r, _ := claims[a.cfg.ExternalRoleClaim].(string); r == string(RoleStaff) {
		role = RoleStaff
	}
	return Principal{Subject: sub, Role: role}, nil
}

// reason is why a token was refused, in words a client can act on.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token expired: log in again"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is not a JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature does not verify"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is not issued for this shop"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token has no expiry"
	}
	return "the token is not valid"
}

// placeholder reports a value copied from the deploy files' examples
// ("change-me…"), which anyone who read the repository knows.
func placeholder(v string) bool { return strings.Contains(strings.ToLower(v), "change-me") }
