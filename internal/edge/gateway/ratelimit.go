package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"shopstream/internal/edge/auth"
)

// keyedLimiter is a token bucket (x/time/rate) per key: a client
// address or a caller. Buckets idle for longer than it takes to refill
// are forgotten, so memory follows the clients active lately.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // a bucket unused this long is full again: forget it

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{},
		idle: time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Minute}
}

// allow takes a token of key's bucket at now, or says how long until one
// is there.
func (k *keyedLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.swept) > k.idle {
		for key, b := range k.buckets {
			if now.Sub(b.seen) > k.idle {
				delete(k.buckets, key)
			}
		}
		k.swept = now
	}
	b := k.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limiters are the gateway's abuse limits.
type limiters struct {
	auth, writes *keyedLimiter
}

func newLimiters(l Limits) limiters {
	return limiters{auth: newKeyedLimiter(l.AuthRate, l.AuthBurst), writes: newKeyedLimiter(l.WriteRate, l.WriteBurst)}
}

// Routes whose limit is per client address: they are called before a
// caller has an identity.
var perAddress = map[string]bool{"POST /customers": true, "POST /auth/token": true}

// admit applies the abuse limits: sign-ups and log-ins per client
// address, other commands per customer (staff keys are not limited). Over the limit it answers 429
// problem+json with Retry-After and returns false.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, pattern string) bool {
	var ok bool
	var wait time.Duration
	switch {
	case perAddress[pattern]:
		ok, wait = g.limit.auth.allow(clientIP(r), time.Now())
	case r.Method == http.MethodPost || r.Method == http.MethodDelete:
		if p, _ := principal(r); p.Role == auth.RoleStaff {
			return true // an operator's key: trusted, and bulk imports must not stall
		}
		ok, wait = g.limit.writes.allow(scope(r), time.Now())
	default:
		return true
	}
	if ok {
		return true
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeProblem(w, r, http.StatusTooManyRequests, "rate-limited",
		fmt.Sprintf("too many requests from this client: try again in %d s", max(secs, 1)))
	return false
}
