package auth

import "net/http"

// HeaderAnonymous, on a request sent through a Transport, sends it with
// no credentials at all (the header itself is removed).
const HeaderAnonymous = "X-Anonymous"

// Transport presents credentials on every request that carries none of
// its own: header set to value (HeaderAPIKey and a staff key, or
// "Authorization" and "Bearer <token>"), over next (nil:
// http.DefaultTransport). It is how the shop's own tools and tests call
// the API as someone.
type Transport struct {
	Header, Value string
	Next          http.RoundTripper
}

// RoundTrip sends r with the credentials, unless it has its own, or asks
// for none with HeaderAnonymous.
func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	r = r.Clone(r.Context())
	switch {
	case r.Header.Get(HeaderAnonymous) != "":
		r.Header.Del(HeaderAnonymous)
	case r.Header.Get("Authorization") == "" && r.Header.Get(HeaderAPIKey) == "":
		r.Header.Set(t.Header, t.Value)
	}
	return next.RoundTrip(r)
}

// StaffClient is an HTTP client acting as staff with key.
func StaffClient(key string, next http.RoundTripper) *http.Client {
	return &http.Client{Transport: Transport{Header: HeaderAPIKey, Value: key, Next: next}}
}
