package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func request(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for i := 0; i < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func bearer(t string) *http.Request { return request("Authorization", "Bearer "+t) }

func TestIssuedTokensAndStaffKeys(t *testing.T) {
	a, err := New(context.Background(), Config{Secret: secret, StaffKeys: []string{"staff-key-of-the-shop"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Issue("c-1")
	if err != nil || tok.TokenType != "Bearer" || tok.ExpiresIn != 900 {
		t.Fatalf("issue: %+v %v", tok, err)
	}
	if p, err := a.Authenticate(bearer(tok.AccessToken)); err != nil || p != (Principal{"c-1", RoleCustomer}) {
		t.Fatalf("own token: %+v %v", p, err)
	}
	p, err := a.Authenticate(request(HeaderAPIKey, "staff-key-of-the-shop"))
	if err != nil || p.Role != RoleStaff || strings.Contains(p.Subject, "staff-key") {
		t.Fatalf("staff key: %+v %v", p, err)
	}
	if _, err := a.Authenticate(request()); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}

	other, _ := New(context.Background(), Config{Secret: []byte("another secret of thirty-two bytes!")})
	foreign, _ := other.Issue("c-1")
	late := *a
	late.now = func() time.Time { return time.Now().Add(16 * time.Minute) }
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": Issuer, "sub": "c-2", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": Issuer, "sub": "c-2"}).SignedString(secret)
	otherIss, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "elsewhere", "sub": "c-2", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	parts := strings.Split(tok.AccessToken, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "c-1", "c-2", 1))) + "." + parts[2]
	for name, c := range map[string]struct {
		a *Authenticator
		r *http.Request
	}{
		"another shop's token":   {a, bearer(foreign.AccessToken)},
		"expired":                {&late, bearer(tok.AccessToken)},
		"alg none":               {a, bearer(none)},
		"no expiry":              {a, bearer(noExp)},
		"another issuer":         {a, bearer(otherIss)},
		"subject changed":        {a, bearer(forged)},
		"not a JWT":              {a, bearer("hello")},
		"basic scheme":           {a, request("Authorization", "Basic Yjpj")},
		"unknown key":            {a, request(HeaderAPIKey, "guessed-key-0000000")},
		"both a key and a token": {a, request(HeaderAPIKey, "staff-key-of-the-shop", "Authorization", "Bearer "+tok.AccessToken)},
	} {
		var refused *Error
		if p, err := c.a.Authenticate(c.r); !errors.As(err, &refused) {
			t.Errorf("%s: accepted as %+v (%v)", name, p, err)
		} else if strings.Contains(refused.Reason, tok.AccessToken) || strings.Contains(refused.Reason, "staff-key") {
			t.Errorf("%s: the reason shows the credentials: %s", name, refused.Reason)
		}
	}
	if _, err := New(context.Background(), Config{Secret: []byte("short")}); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

// Tokens of an external OpenID Connect issuer verify against its JWKS:
// sub is the customer, shop_role=staff makes staff; another issuer, an
// unknown key or an HMAC token signed with the public key are refused.
func TestExternalIssuerTokens(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, Config{Secret: secret, JWKSURL: srv.URL, ExternalIssuer: "https://idp.example", ExternalAudience: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims jwt.MapClaims, k *rsa.PrivateKey, kid string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	if p, err := a.Authenticate(bearer(sign(jwt.MapClaims{"iss": "https://idp.example", "aud": "shop", "sub": "c-9", "exp": exp}, key, "k1"))); err != nil ||
		p != (Principal{"c-9", RoleCustomer}) {
		t.Fatalf("external customer: %+v %v", p, err)
	}
	if p, err := a.Authenticate(bearer(sign(jwt.MapClaims{"iss": "https://idp.example", "aud": "shop", "sub": "ops", "exp": exp, "shop_role": "staff"}, key, "k1"))); err != nil ||
		p.Role != RoleStaff {
		t.Fatalf("external staff: %+v %v", p, err)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := json.Marshal(key.PublicKey)
	hmacWithPublic, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://idp.example", "aud": "shop", "sub": "c-9", "exp": exp}).SignedString(pub)
	for name, tok := range map[string]string{
		"another issuer":           sign(jwt.MapClaims{"iss": "https://evil.example", "aud": "shop", "sub": "c-9", "exp": exp}, key, "k1"),
		"another audience":         sign(jwt.MapClaims{"iss": "https://idp.example", "aud": "bank", "sub": "c-9", "exp": exp}, key, "k1"),
		"a key not in the JWKS":    sign(jwt.MapClaims{"iss": "https://idp.example", "aud": "shop", "sub": "c-9", "exp": exp}, stranger, "k1"),
		"HMAC with the public key": hmacWithPublic,
	} {
		if p, err := a.Authenticate(bearer(tok)); err == nil {
			t.Errorf("%s: accepted as %+v", name, p)
		}
	}
}

// The deploy files' placeholders, and an external issuer without an
// audience, are refused at start.
func TestPlaceholdersAndOpenAudiencesAreRefused(t *testing.T) {
	for name, cfg := range map[string]Config{
		"placeholder secret":    {Secret: []byte("change-me-to-32-random-bytes-or-more")},
		"placeholder staff key": {Secret: secret, StaffKeys: []string{"sk_change-me-staff-key"}},
		"JWKS without audience": {Secret: secret, JWKSURL: "http://127.0.0.1:1/jwks", ExternalIssuer: "https://idp.example"},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
