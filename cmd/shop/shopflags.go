package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/edge/auth"
	"shopstream/internal/edge/gateway"
	"shopstream/processors/saga"
)

// shopFlags are the flags of the shop's own behaviour, shared by `shop dev`
// and `shop run`.
type shopFlags struct {
	maxInFlight *int
	emailRate   *float64
	mailFrom    *string

	queryTimeout, commandTimeout, bodyTimeout *time.Duration
	maxStreams, maxQueries                    *int
	paymentTimeout, sepaTimeout               *time.Duration
	databasePerContext                        *bool

	tokenSecret, jwksURL, issuer, audience *string
	staffKeys, corsOrigins                 listFlag
	tokenTTL                               *time.Duration
	authRate, writeRate                    *float64
	authBurst, writeBurst                  *int
}

// databasePerContextUsage is --database-per-context's meaning, in every
// subcommand that has it.
const databasePerContextUsage = "give every write context a PostgreSQL database of its own beside --postgres-url's (shop_orders, shop_inventory, …), created and migrated at start: its tables, outbox and idempotency keys; no transaction spans two contexts"

func addShopFlags(fs *flag.FlagSet) *shopFlags {
	f := &shopFlags{
		maxInFlight: fs.Int("max-inflight", app.DefaultMaxInFlight, "commands one instance runs at once; more are refused with 429 (load shedding)"),
		emailRate:   fs.Float64("email-rate", app.DefaultEmailRate, "emails per second the provider accepts, for all email senders together"),
		mailFrom:    fs.String("mail-from", app.DefaultMailFrom, "sender of the shop's emails"),
		queryTimeout: fs.Duration("query-timeout", gateway.DefaultQueryTimeout,
			"server-side deadline of a query (GET); past it the gateway answers 503 naming the read model"),
		commandTimeout: fs.Duration("command-timeout", gateway.DefaultCommandTimeout,
			"server-side deadline of a command (POST, DELETE); past it the gateway answers 503"),
		bodyTimeout: fs.Duration("body-timeout", gateway.DefaultBodyTimeout,
			"time to read a whole request, headers and body; a slower body is cut off with 408"),
		maxStreams: fs.Int("max-streams", gateway.DefaultMaxStreams, "concurrent event streams (GET /products/{id}/events); more answer 503"),
		maxQueries: fs.Int("max-queries", gateway.DefaultMaxQueries,
			fmt.Sprintf("queries (read-model GETs) one instance runs at once; one more waits at most %v for a slot, then answers 503 with Retry-After (load shedding)", gateway.QueryQueueWait)),
		paymentTimeout: fs.Duration("payment-timeout", saga.DefaultPaymentTimeout,
			"how long the saga waits for a card payment's outcome; then it releases the units, cancels the order (payment_timeout) and the payment, and refunds a charge that comes later"),
		sepaTimeout: fs.Duration("sepa-timeout", saga.DefaultSepaTimeout,
			"how long the saga waits for the bank to confirm a SEPA transfer; then as --payment-timeout"),
		databasePerContext: fs.Bool("database-per-context", false, databasePerContextUsage),
		tokenSecret:        fs.String("auth-token-secret", "", fmt.Sprintf("secret that signs the customers' tokens (HMAC-SHA256, at least %d bytes; the same on every gateway instance; shop dev makes one in its data dir)", auth.MinSecret)),
		tokenTTL:           fs.Duration("token-ttl", auth.DefaultTTL, "lifetime of a customer's token"),
		jwksURL:            fs.String("auth-jwks-url", "", "JWKS of an external OpenID Connect issuer whose tokens are accepted too (sub: the customer's id; shop_role=staff: staff)"),
		issuer:             fs.String("auth-issuer", "", "iss the external issuer's tokens must carry (with --auth-jwks-url)"),
		audience:           fs.String("auth-audience", "", "aud the external issuer's tokens must carry (required with --auth-jwks-url)"),
		authRate:           fs.Float64("auth-rate", gateway.DefaultAuthRate, "sign-ups and log-ins per second one client address may make; more answer 429"),
		authBurst:          fs.Int("auth-burst", gateway.DefaultAuthBurst, "burst of --auth-rate"),
		writeRate:          fs.Float64("write-rate", gateway.DefaultWriteRate, "commands per second one customer may send; more answer 429 (staff keys are not limited)"),
		writeBurst:         fs.Int("write-burst", gateway.DefaultWriteBurst, "burst of --write-rate"),
	}
	fs.Var(&f.staffKeys, "staff-keys", "staff API keys, comma-separated, sent in X-API-Key (shop dev makes one in its data dir)")
	fs.Var(&f.corsOrigins, "cors-origins", "origins whose browser pages may call the API, comma-separated (none by default: no CORS header is sent)")
	return f
}

// check names the flag that is out of range.
func (f *shopFlags) check() error {
	if *f.maxInFlight < 1 {
		return fmt.Errorf("--max-inflight %d: must be at least 1", *f.maxInFlight)
	}
	for name, d := range map[string]time.Duration{"query-timeout": *f.queryTimeout, "command-timeout": *f.commandTimeout, "body-timeout": *f.bodyTimeout,
		"payment-timeout": *f.paymentTimeout, "sepa-timeout": *f.sepaTimeout} {
		if d <= 0 {
			return fmt.Errorf("--%s %v: must be positive", name, d)
		}
	}
	if *f.maxStreams < 1 {
		return fmt.Errorf("--max-streams %d: must be at least 1", *f.maxStreams)
	}
	if *f.maxQueries < 1 {
		return fmt.Errorf("--max-queries %d: must be at least 1", *f.maxQueries)
	}
	if *f.emailRate <= 0 {
		return fmt.Errorf("--email-rate %v: must be positive", *f.emailRate)
	}
	if *f.tokenSecret != "" && len(*f.tokenSecret) < auth.MinSecret {
		return fmt.Errorf("--auth-token-secret: must be at least %d bytes, got %d", auth.MinSecret, len(*f.tokenSecret))
	}
	if *f.jwksURL != "" && (*f.issuer == "" || *f.audience == "") {
		return errors.New("--auth-jwks-url needs --auth-issuer and --auth-audience, the iss and aud its tokens carry (without the audience, the issuer's tokens for any other application would do)")
	}
	for name, v := range map[string]float64{"auth-rate": *f.authRate, "write-rate": *f.writeRate, "token-ttl": f.tokenTTL.Seconds()} {
		if v <= 0 {
			return fmt.Errorf("--%s %v: must be positive", name, v)
		}
	}
	for name, v := range map[string]int{"auth-burst": *f.authBurst, "write-burst": *f.writeBurst} {
		if v < 1 {
			return fmt.Errorf("--%s %d: must be at least 1", name, v)
		}
	}
	for _, k := range f.staffKeys {
		if len(k) < 16 {
			return errors.New("--staff-keys: each key must be at least 16 characters")
		}
	}
	return nil
}

// apply copies the flags into cfg.
func (f *shopFlags) apply(cfg app.Config) app.Config {
	cfg.MaxInFlight = *f.maxInFlight
	cfg.EmailRate = *f.emailRate
	cfg.MailFrom = *f.mailFrom
	cfg.HTTPLimits = gateway.Limits{QueryTimeout: *f.queryTimeout, CommandTimeout: *f.commandTimeout,
		BodyTimeout: *f.bodyTimeout, MaxStreams: *f.maxStreams, MaxQueries: *f.maxQueries}
	cfg.PaymentTimeout, cfg.SepaTimeout = *f.paymentTimeout, *f.sepaTimeout
	cfg.DatabasePerContext = *f.databasePerContext
	cfg.HTTPLimits.AuthRate, cfg.HTTPLimits.AuthBurst = *f.authRate, *f.authBurst
	cfg.HTTPLimits.WriteRate, cfg.HTTPLimits.WriteBurst = *f.writeRate, *f.writeBurst
	// Flags given replace what a dev stack made.
	if *f.tokenSecret != "" {
		cfg.Auth.TokenSecret = *f.tokenSecret
	}
	if len(f.staffKeys) > 0 {
		cfg.Auth.StaffKeys = f.staffKeys
	}
	cfg.Auth.TokenTTL = *f.tokenTTL
	cfg.Auth.JWKSURL, cfg.Auth.Issuer, cfg.Auth.Audience = *f.jwksURL, *f.issuer, *f.audience
	cfg.CORSOrigins = f.corsOrigins
	return cfg
}

// pspFlags are the behaviour of the simulated payment providers of an
// embedded stack (`shop dev`, `shop loadtest --embedded`).
type pspFlags struct {
	failureRate *float64
	latency     *time.Duration
}

func addPSPFlags(fs *flag.FlagSet) *pspFlags {
	return &pspFlags{
		failureRate: fs.Float64("psp-failure-rate", 0, "share of payments the simulated card PSP and SEPA bank decline, 0 to 1"),
		latency:     fs.Duration("psp-latency", 50*time.Millisecond, "mean latency of the simulated payment providers"),
	}
}

func (f *pspFlags) check() error {
	if *f.failureRate < 0 || *f.failureRate > 1 {
		return fmt.Errorf("--psp-failure-rate %v: must be between 0 and 1", *f.failureRate)
	}
	if *f.latency < 0 {
		return fmt.Errorf("--psp-latency %v: must not be negative", *f.latency)
	}
	return nil
}

func (f *pspFlags) apply(cfg devstack.Config) devstack.Config {
	cfg.PSPFailureRate, cfg.PSPLatency = *f.failureRate, *f.latency
	return cfg
}
