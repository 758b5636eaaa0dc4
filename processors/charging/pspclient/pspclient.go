// Package pspclient calls a payment gateway (the card PSP or the SEPA bank,
// simulated in `shop dev` by internal/devinfra/embedded/psp) over its HTTP API.
//
// Guarantees:
//   - Every attempt of one Charge carries the same idempotency key (the
//     caller passes the event id), so a timeout after the gateway charged
//     gets the stored answer on the next attempt: one key is charged at most
//     once, however many attempts, breaker trips or caller retries it takes,
//     as long as the caller keeps the key.
//   - Transient failures (network errors, the per-attempt timeout, 408, 429
//     and 5xx) are retried up to MaxAttempts with exponential backoff and
//     full jitter (a uniform wait in [0, min(MaxBackoff, MinBackoff·2^n)]),
//     never shorter than a Retry-After the gateway sends (capped at
//     MaxBackoff). When they run out the error wraps ErrUnavailable.
//   - A decline (402) is a business answer: never retried, returned as a
//     *DeclinedError that matches ErrDeclined, with the result's Status and
//     Reason set.
//   - Any other 4xx (malformed request, key reused with another body) is
//     permanent and wraps ErrRejected.
//   - A circuit breaker (sony/gobreaker/v2) counts transient failures only
//     (declines and rejections prove the gateway is up; the caller's own
//     cancellation is not counted). After FailureThreshold consecutive
//     ones it opens and every call fails fast with ErrCircuitOpen until
//     OpenTimeout has passed; it then lets HalfOpenRequests trial attempts
//     through, which close it on success or open it again on failure.
//   - Cancelling ctx stops the attempt in flight and any backoff at once;
//     the error wraps ctx.Err().
//
// IsTransient tells the caller which errors to retry later with the same key
// (ErrUnavailable, ErrCircuitOpen); ErrDeclined is a payment failure to
// record; ErrRejected is a poison record.
package pspclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

var (
	// ErrDeclined: the gateway declined the payment (402); final for that key.
	ErrDeclined = errors.New("payment declined")
	// ErrCircuitOpen: the breaker is open (or half-open and busy); nothing
	// was sent. Transient: retry later with the same key.
	ErrCircuitOpen = errors.New("payment gateway circuit open")
	// ErrUnavailable: every attempt failed transiently. Transient: the charge
	// may or may not have happened; retry later with the same key.
	ErrUnavailable = errors.New("payment gateway unavailable")
	// ErrRejected: the gateway refused the request itself (a 4xx other than
	// 402, 408 and 429) or answered something unreadable; retrying the same
	// request cannot help.
	ErrRejected = errors.New("payment request rejected")
)

// DeclinedError is returned for a decline; errors.Is(err, ErrDeclined).
type DeclinedError struct {
	Reason string // the gateway's reason, e.g. "card_declined"
}

func (e *DeclinedError) Error() string { return "payment declined: " + e.Reason }

// Is makes a DeclinedError match ErrDeclined.
func (e *DeclinedError) Is(target error) bool { return target == ErrDeclined }

// IsTransient reports whether err is worth retrying later with the same
// idempotency key: the gateway was unreachable or the breaker was open.
func IsTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCircuitOpen)
}

// BreakerConfig configures the circuit breaker.
type BreakerConfig struct {
	Name string // default "psp"
	// FailureThreshold is the number of consecutive transient failures
	// that opens the breaker; default 5.
	FailureThreshold uint32
	// OpenTimeout is how long the breaker stays open before half-opening;
	// default 10s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many trial attempts a half-open breaker lets
	// through; that many successes close it. Default 1.
	HalfOpenRequests uint32
	// OnStateChange, if set, is called on every state change (for metrics).
	OnStateChange func(name string, from, to gobreaker.State)
}

// Config configures a Client.
type Config struct {
	BaseURL     string        // e.g. http://127.0.0.1:8090; required
	Timeout     time.Duration // per attempt; default 2s
	MaxAttempts int           // attempts per Charge, first included; default 5
	MinBackoff  time.Duration // default 100ms
	MaxBackoff  time.Duration // default 5s
	Breaker     BreakerConfig
	HTTPClient  *http.Client // optional; its own Timeout should be 0 (Timeout applies)
	Logger      *slog.Logger // optional
}

// ChargeRequest is what to charge.
type ChargeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Method      string `json:"method"` // "card" or "sepa"
}

// Statuses of a ChargeResult.
const (
	StatusSucceeded = "succeeded"
	StatusDeclined  = "declined"
)

// ChargeResult is the gateway's answer.
type ChargeResult struct {
	ChargeID string // set when Status is StatusSucceeded
	Status   string // StatusSucceeded or StatusDeclined
	Reason   string // decline reason
	Replayed bool   // the gateway answered from its idempotency store
	Attempts int    // HTTP attempts made by this call
}

// Client is a payment gateway client, safe for concurrent use. Its breaker
// is shared by every call.
type Client struct {
	cfg  Config
	url  string
	http *http.Client
	cb   *gobreaker.CircuitBreaker[ChargeResult]
	log  *slog.Logger
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("pspclient: BaseURL is required")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 2*time.Second)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 5)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = max(cmp.Or(cfg.MaxBackoff, 5*time.Second), cfg.MinBackoff)
	cfg.Breaker.Name = cmp.Or(cfg.Breaker.Name, "psp")
	cfg.Breaker.FailureThreshold = cmp.Or(cfg.Breaker.FailureThreshold, 5)
	cfg.Breaker.OpenTimeout = cmp.Or(cfg.Breaker.OpenTimeout, 10*time.Second)
	cfg.Breaker.HalfOpenRequests = cmp.Or(cfg.Breaker.HalfOpenRequests, 1)
	if cfg.Timeout < 0 || cfg.MaxAttempts < 1 || cfg.MinBackoff < 0 || cfg.Breaker.OpenTimeout < 0 {
		return nil, errors.New("pspclient: negative timeout, backoff or attempts")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "pspclient", "breaker", cfg.Breaker.Name)
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		hc = &http.Client{Transport: tr}
	}
	c := &Client{cfg: cfg, url: strings.TrimRight(cfg.BaseURL, "/") + "/charges", http: hc, log: log}
	threshold := cfg.Breaker.FailureThreshold
	onChange := cfg.Breaker.OnStateChange
	c.cb = gobreaker.NewCircuitBreaker[ChargeResult](gobreaker.Settings{
		Name:        cfg.Breaker.Name,
		MaxRequests: cfg.Breaker.HalfOpenRequests,
		Timeout:     cfg.Breaker.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= threshold },
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, ErrDeclined) || errors.Is(err, ErrRejected)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("payment gateway circuit breaker changed state", "from", from.String(), "to", to.String())
			if onChange != nil {
				onChange(name, from, to)
			}
		},
	})
	return c, nil
}

// State is the breaker's state: gobreaker.StateClosed, StateHalfOpen or
// StateOpen.
func (c *Client) State() gobreaker.State { return c.cb.State() }

// errCallerGone marks an attempt ended by the caller's ctx, which says
// nothing about the gateway's health.
var errCallerGone = errors.New("caller gone")

// transientError is a failed attempt worth retrying.
type transientError struct {
	err        error
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Charge asks the gateway to charge req once under idempotencyKey, retrying
// transient failures with the same key. See the package documentation for
// the errors. On a decline it returns the result (Status StatusDeclined)
// and a *DeclinedError.
func (c *Client) Charge(ctx context.Context, idempotencyKey string, req ChargeRequest) (ChargeResult, error) {
	if idempotencyKey == "" {
		return ChargeResult{}, fmt.Errorf("pspclient: %w: empty idempotency key", ErrRejected)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return ChargeResult{}, fmt.Errorf("pspclient: %w: %v", ErrRejected, err)
	}
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ChargeResult{Attempts: attempt - 1}, callerErr(idempotencyKey, err, last)
		}
		res, err := c.cb.Execute(func() (ChargeResult, error) { return c.attempt(ctx, idempotencyKey, body) })
		res.Attempts = attempt
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			res.Attempts = attempt - 1
			if last != nil {
				return res, fmt.Errorf("pspclient: charge %s: %w (%v) after: %w", idempotencyKey, ErrCircuitOpen, err, last)
			}
			return res, fmt.Errorf("pspclient: charge %s: %w (%v)", idempotencyKey, ErrCircuitOpen, err)
		case errors.Is(err, errCallerGone):
			return res, callerErr(idempotencyKey, ctx.Err(), last)
		case errors.Is(err, ErrDeclined):
			return res, err
		case errors.Is(err, ErrRejected):
			return res, fmt.Errorf("pspclient: charge %s: %w", idempotencyKey, err)
		}
		last = err
		if attempt >= c.cfg.MaxAttempts {
			return res, fmt.Errorf("pspclient: charge %s: %w after %d attempts: %w", idempotencyKey, ErrUnavailable, attempt, err)
		}
		wait := c.backoff(attempt)
		var te *transientError
		if errors.As(err, &te) && te.retryAfter > wait {
			wait = min(te.retryAfter, c.cfg.MaxBackoff)
		}
		c.log.Debug("payment gateway attempt failed; retrying", "key", idempotencyKey, "attempt", attempt, "backoff", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ChargeResult{Attempts: attempt}, callerErr(idempotencyKey, ctx.Err(), last)
		}
	}
}

// Refund gives a succeeded charge's money back (the gateway refunds a
// charge once; asking again answers the same). One attempt within the
// per-attempt timeout, outside the breaker: an unreachable gateway wraps
// ErrUnavailable, for the caller to retry later; an unknown charge wraps
// ErrRejected.
func (c *Client) Refund(ctx context.Context, chargeID string) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, c.url+"/"+url.PathEscape(chargeID)+"/refund", nil)
	if err != nil {
		return fmt.Errorf("pspclient: refund %s: %w: %v", chargeID, ErrRejected, err)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("pspclient: refund %s: %w: %v", chargeID, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("pspclient: refund %s: %w: gateway answered %d: %s", chargeID, ErrUnavailable, code, snippet(raw))
	default:
		return fmt.Errorf("pspclient: refund %s: %w: gateway answered %d: %s", chargeID, ErrRejected, code, snippet(raw))
	}
}

func callerErr(key string, ctxErr, last error) error {
	if last != nil {
		return fmt.Errorf("pspclient: charge %s: %w (last attempt: %v)", key, ctxErr, last)
	}
	return fmt.Errorf("pspclient: charge %s: %w", key, ctxErr)
}

// backoff is the full-jitter wait after attempt n (1-based): uniform in
// [0, min(MaxBackoff, MinBackoff·2^(n-1))].
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 1; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// attempt makes one HTTP call.
func (c *Client) attempt(ctx context.Context, key string, body []byte) (ChargeResult, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return ChargeResult{}, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Idempotency-Key", key)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return ChargeResult{}, c.failed(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ChargeResult{}, c.failed(ctx, err)
	}
	var ans struct {
		ChargeID string `json:"charge_id"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
	}
	replayed := resp.Header.Get("Idempotent-Replayed") == "true"
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusCreated:
		if err := json.Unmarshal(raw, &ans); err != nil || ans.ChargeID == "" || ans.Status != StatusSucceeded {
			return ChargeResult{}, fmt.Errorf("%w: unreadable %d answer: %s", ErrRejected, code, snippet(raw))
		}
		return ChargeResult{ChargeID: ans.ChargeID, Status: StatusSucceeded, Replayed: replayed}, nil
	case code == http.StatusPaymentRequired:
		_ = json.Unmarshal(raw, &ans)
		reason := cmp.Or(ans.Reason, "declined")
		return ChargeResult{Status: StatusDeclined, Reason: reason, Replayed: replayed}, &DeclinedError{Reason: reason}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return ChargeResult{}, &transientError{
			err:        fmt.Errorf("gateway answered %d: %s", code, snippet(raw)),
			retryAfter: retryAfter(resp.Header.Get("Retry-After")),
		}
	default:
		return ChargeResult{}, fmt.Errorf("%w: gateway answered %d: %s", ErrRejected, code, snippet(raw))
	}
}

// failed classifies a transport error: the caller's cancellation or a
// transient failure (including the per-attempt timeout).
func (c *Client) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", errCallerGone, err)
	}
	return &transientError{err: err}
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
