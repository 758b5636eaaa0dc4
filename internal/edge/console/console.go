// Package console serves the pipeline console on the admin listener
// (/console): the topics and consumer groups laid out as the data flows,
// the email group against its quota, the dead letters with redrive, the
// replays of read models, an order's history with the sold-out notices as
// they come, and a running load test's figures.
//
// Pages are rendered on the server and work without JavaScript; a small
// embedded script (no CDN, no build step) replaces their live parts with
// the fragments the server pushes over SSE (/console/events) once a
// sample. The sampler measures only while a page or stream asked within
// the last 20 seconds, so a console nobody watches costs the shop nothing.
//
// Actions (redrive, starting a replay, a load test's reports) are staff
// only: the X-API-Key header, or the key given once on /console/login and
// kept in an HttpOnly, SameSite=Strict cookie scoped to /console. The
// redrive goes through package deadletter and the replays through package
// replay: the code paths of `shop dlq` and `shop replay`.
package console

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/edge/stockwatch"
	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

//go:embed assets
var assets embed.FS

const deadLetterSuffix = schemas.DLQSuffix

// cookieName holds the staff key a browser gave on /console/login.
const cookieName = "shop_console"

// Config is what the console reads and acts on.
type Config struct {
	Admin *kadm.Client
	// Kafka are the seed brokers and security of the dead letters' reader
	// and the redrive's producer.
	Kafka  []kgo.Opt
	Topics []string            // the event-log topics
	Groups map[string][]string // every consumer group of the shop, to its topics
	// Outbox is the rows waiting in the outboxes (nil: not shown).
	Outbox func(context.Context) (int64, error)
	// EmailGroup and EmailRate: the email group and its group-wide quota.
	EmailGroup string
	EmailRate  float64
	// Decode renders a record's payload as JSON (nil: not decoded).
	Decode func(*kgo.Record) (string, error)
	// Replay is the configuration replays start from (Kafka, serde,
	// store); nil: this instance has no read models to rebuild.
	Replay func() replay.Config
	// Orders reads the orders read model (nil: no look-up).
	Orders *orderviews.Reader
	// SoldOut streams every product's stock notices (nil: not shown).
	SoldOut func(context.Context) <-chan stockwatch.Notice
	// IsStaff tells whether key is a staff API key.
	IsStaff func(key string) bool
	// Interval between samples (default 2 s).
	Interval time.Duration
	Logger   *slog.Logger
}

func (c Config) deadLetterTopics() []string {
	out := make([]string, 0, len(c.Topics))
	for _, t := range c.Topics {
		out = append(out, eventlog.DeadLetterTopic(t))
	}
	return out
}

// Console is the console's state: its sampler, replays and load test.
type Console struct {
	cfg      Config
	smp      *sampler
	tmpl     *template.Template
	stop     context.CancelFunc
	mu       sync.Mutex
	jobs     []*job
	load     []LoadSecond
	rendered map[string]rendered // by view
	seqMu    sync.Mutex
	seq      int64
}

// New starts a console; Close stops its sampler and replays.
func New(cfg Config) (*Console, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IsStaff == nil {
		cfg.IsStaff = func(string) bool { return false }
	}
	tmpl, err := template.New("console").Funcs(funcs).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Console{cfg: cfg, smp: newSampler(ctx, cfg), tmpl: tmpl, stop: cancel, rendered: map[string]rendered{}}, nil
}

// Close stops the sampler and every running replay.
func (c *Console) Close() { c.stop() }

// Handler serves the console under /console.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", c.page("pipeline", c.pipeline))
	mux.HandleFunc("GET /console/email", c.page("email", c.email))
	mux.HandleFunc("GET /console/dlq", c.page("dlq", c.deadLetters))
	mux.HandleFunc("POST /console/dlq/redrive", c.staff(c.redrive))
	mux.HandleFunc("GET /console/replays", c.page("replays", c.replays))
	mux.HandleFunc("POST /console/replays", c.staff(c.startReplay))
	mux.HandleFunc("GET /console/orders", c.page("orders", c.orders))
	mux.HandleFunc("GET /console/loadtest", c.page("loadtest", c.loadtest))
	mux.HandleFunc("POST /console/loadtest", c.staff(c.reportLoad))
	mux.HandleFunc("GET /console/login", c.page("login", func(r *http.Request) (any, error) { return nil, nil }))
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("GET /console/events", c.events)
	mux.Handle("GET /console/assets/", http.StripPrefix("/console/", http.FileServerFS(assets)))
	return mux
}

// page renders view with what data returns, in the layout.
func (c *Console) page(view string, data func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, dataErr := data(r)
		var buf bytes.Buffer
		if err := c.tmpl.ExecuteTemplate(&buf, "layout", map[string]any{
			"View": view, "Data": d, "Err": errText(dataErr), "Staff": c.isStaff(r), "Msg": r.URL.Query().Get("msg"),
		}); err != nil {
			c.cfg.Logger.Error("console: render", "view", view, "err", err)
			http.Error(w, "the console could not render this page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		_, _ = w.Write(buf.Bytes())
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// isStaff: the request carries a staff key (header or cookie).
func (c *Console) isStaff(r *http.Request) bool {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return c.cfg.IsStaff(k)
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		return c.cfg.IsStaff(ck.Value)
	}
	return false
}

// staff lets h answer staff only; others get 401 (a problem, or the login
// page's address for a browser's form).
func (c *Console) staff(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.isStaff(r) {
			if strings.Contains(r.Header.Get("Accept"), "text/html") || r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
				http.Redirect(w, r, "/console/login?msg="+urlQuery("this action needs a staff key"), http.StatusSeeOther)
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("WWW-Authenticate", `ApiKey header="X-API-Key"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"/problems/unauthorized","title":"Unauthorized","status":401,"detail":"the console's actions need a staff API key (X-API-Key)"}`))
			return
		}
		h(w, r)
	}
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	if !c.cfg.IsStaff(key) {
		http.Redirect(w, r, "/console/login?msg="+urlQuery("not a staff key"), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: key, Path: "/console", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// views' data

func (c *Console) pipeline(r *http.Request) (any, error) { return c.smp.current(r.Context()), nil }
func (c *Console) email(r *http.Request) (any, error)    { return c.smp.current(r.Context()), nil }
