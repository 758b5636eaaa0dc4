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
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/edge/stockwatch"
	"shopstream/internal/platform/deadletter"
	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/readmodels"
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
		d, err := data(r)
		var buf bytes.Buffer
		err = c.tmpl.ExecuteTemplate(&buf, "layout", map[string]any{
			"View": view, "Data": d, "Err": errText(err), "Staff": c.isStaff(r), "Msg": r.URL.Query().Get("msg"),
		})
		if err != nil {
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

func urlQuery(s string) string { return strings.ReplaceAll(template.URLQueryEscaper(s), "+", "%20") }

// views' data

func (c *Console) pipeline(r *http.Request) (any, error) { return c.smp.current(r.Context()), nil }
func (c *Console) email(r *http.Request) (any, error)    { return c.smp.current(r.Context()), nil }

// Letter is a dead letter as the page shows it.
type Letter struct {
	deadletter.Letter
	Topic    string
	Headers  []string
	Payload  string
	Redriven bool
}

// DeadLetters are the dead letters of every topic, pending first.
type DeadLetters struct {
	Pending, Redriven []Letter
	Topics            []string // dead-letter topics with pending letters
}

func (c *Console) deadLetters(r *http.Request) (any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	letters, err := deadletter.List(ctx, c.cfg.Admin, c.cfg.Kafka, c.cfg.deadLetterTopics())
	if err != nil {
		return nil, err
	}
	var out DeadLetters
	for _, l := range letters {
		v := Letter{Letter: l, Topic: l.Record.Topic, Redriven: l.Redriven}
		for _, h := range l.Record.Headers {
			v.Headers = append(v.Headers, h.Key+"="+string(h.Value))
		}
		if c.cfg.Decode != nil {
			if js, err := c.cfg.Decode(l.Record); err == nil {
				v.Payload = js
			} else {
				v.Payload = "(does not decode: " + err.Error() + ")"
			}
		}
		if l.Redriven {
			out.Redriven = append(out.Redriven, v)
			continue
		}
		out.Pending = append(out.Pending, v)
		if !slices.Contains(out.Topics, v.Topic) {
			out.Topics = append(out.Topics, v.Topic)
		}
	}
	return out, nil
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	topics, err := deadletter.Topics(r.PostFormValue("topic"), true)
	if err != nil {
		http.Redirect(w, r, "/console/dlq?msg="+urlQuery(err.Error()), http.StatusSeeOther)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(c.cfg.Kafka...)
	if err != nil {
		http.Redirect(w, r, "/console/dlq?msg="+urlQuery(err.Error()), http.StatusSeeOther)
		return
	}
	defer cl.Close()
	res, err := deadletter.Redrive(ctx, cl, c.cfg.Admin, c.cfg.Kafka, topics[0])
	msg := fmt.Sprintf("sent %d records back from %s (%d dead letters read)", res.Sent, topics[0], res.Read)
	if err != nil {
		msg = "redrive " + topics[0] + ": " + err.Error()
	}
	c.cfg.Logger.Info("console: redrive", "topic", topics[0], "sent", res.Sent, "err", err)
	http.Redirect(w, r, "/console/dlq?msg="+urlQuery(msg), http.StatusSeeOther)
}

// Job is a replay started from the console.
type job struct {
	ID       int
	Name     string
	Mode     string // "rebuild" or "verify"
	Started  time.Time
	Progress replay.Progress
	Done     bool
	Result   string
	Err      string
}

// Rate is the job's events/s so far.
func (j job) Rate() float64 {
	if s := j.Progress.Elapsed.Seconds(); s > 0 {
		return float64(j.Progress.Events) / s
	}
	return 0
}

// ETA is the time left to the head at the current rate.
func (j job) ETA() time.Duration {
	if r := j.Rate(); r > 0 && j.Progress.Lag > 0 {
		return time.Duration(float64(j.Progress.Lag) / r * float64(time.Second)).Round(time.Second)
	}
	return 0
}

// Percent is how far the job folded the log, 0 to 100.
func (j job) Percent() int {
	if total := j.Progress.Events + j.Progress.Lag; total > 0 {
		return int(j.Progress.Events * 100 / total)
	}
	return 0
}

// Replays is what the replays page shows.
type Replays struct {
	Names     []string
	Jobs      []job
	Available bool
}

func (c *Console) replays(*http.Request) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Replays{Names: readmodels.Names(), Available: c.cfg.Replay != nil}
	for i := len(c.jobs) - 1; i >= 0; i-- {
		out.Jobs = append(out.Jobs, *c.jobs[i])
	}
	return out, nil
}

func (c *Console) startReplay(w http.ResponseWriter, r *http.Request) {
	name, mode := r.PostFormValue("name"), r.PostFormValue("mode")
	j, ok := readmodels.Lookup(name)
	switch {
	case c.cfg.Replay == nil:
		http.Redirect(w, r, "/console/replays?msg="+urlQuery("this instance has no read models (no MongoDB)"), http.StatusSeeOther)
		return
	case !ok || mode != "rebuild" && mode != "verify":
		http.Redirect(w, r, "/console/replays?msg="+urlQuery("name a read model ("+strings.Join(readmodels.Names(), ", ")+") and rebuild or verify"), http.StatusSeeOther)
		return
	}
	c.mu.Lock()
	jb := &job{ID: len(c.jobs) + 1, Name: name, Mode: mode, Started: time.Now(), Progress: replay.Progress{Phase: replay.PhaseRebuilding}}
	c.jobs = append(c.jobs, jb)
	c.mu.Unlock()
	cfg := c.cfg.Replay()
	cfg.Logger = c.cfg.Logger
	if d, err := time.ParseDuration(r.PostFormValue("drop_after")); err == nil && d > 0 {
		cfg.DropAfter = d
	}
	cfg.OnProgress = func(p replay.Progress) {
		c.mu.Lock()
		jb.Progress = p
		c.mu.Unlock()
	}
	ctx := context.WithoutCancel(r.Context())
	go func() {
		var result string
		var err error
		if mode == "verify" {
			var v replay.Verification
			if v, err = j.Verify(ctx, cfg); err == nil {
				result = fmt.Sprintf("%d documents of %s compared with a replay of %d events: %d differences", v.Compared, v.Live, v.Events, v.Differences)
			}
		} else {
			var rep replay.Report
			if rep, err = j.Rebuild(ctx, cfg); err == nil {
				result = fmt.Sprintf("%d events into %s in %s (%.0f events/s), %d documents; readers switched from %s, which is dropped",
					rep.Events, rep.To, rep.Elapsed.Round(time.Millisecond), rep.Rate(), rep.Documents, rep.From)
			}
		}
		c.mu.Lock()
		jb.Done, jb.Result = true, result
		if err != nil {
			jb.Err = err.Error()
		}
		c.mu.Unlock()
		c.cfg.Logger.Info("console: replay", "name", name, "mode", mode, "result", result, "err", err)
	}()
	http.Redirect(w, r, "/console/replays", http.StatusSeeOther)
}

// OrderPage is an order looked up by id.
type OrderPage struct {
	ID      string
	Found   bool
	Order   orderviews.View
	History []orderviews.Change
	SoldOut bool // the page streams sold-out notices
}

func (c *Console) orders(r *http.Request) (any, error) {
	p := OrderPage{ID: strings.TrimSpace(r.URL.Query().Get("id")), SoldOut: c.cfg.SoldOut != nil}
	if p.ID == "" || c.cfg.Orders == nil {
		return p, nil
	}
	v, ok, err := c.cfg.Orders.Get(r.Context(), p.ID)
	if err != nil {
		return p, err
	}
	p.Found, p.Order = ok, v
	if ok {
		p.History = v.History()
	}
	return p, nil
}

// LoadSecond is one second of a running load test, as `shop loadtest`
// reports it to the console of the shop it loads (POST /console/loadtest).
type LoadSecond struct {
	T       int                  `json:"t"` // seconds since the start of the load
	Phase   string               `json:"phase"`
	Target  float64              `json:"target_rps"`
	Sent    int64                `json:"sent"`
	OK      int64                `json:"ok"`
	Shed    int64                `json:"shed"` // 429s and 503s with Retry-After
	Refused int64                `json:"refused"`
	Errors  int64                `json:"errors"`
	P95     float64              `json:"p95_ms"`
	Routes  map[string]RouteLive `json:"routes"`
}

// RouteLive is one route in one second of a load test.
type RouteLive struct {
	Count int64   `json:"count"`
	Shed  int64   `json:"shed"`
	P95   float64 `json:"p95_ms"`
}

// maxLoadSeconds bounds the load test's history the console keeps.
const maxLoadSeconds = 3600

func (c *Console) reportLoad(w http.ResponseWriter, r *http.Request) {
	var s LoadSecond
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&s); err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"type":"/problems/malformed","title":"Bad Request","status":400,"detail":%q}`, "a load test second as JSON: "+err.Error())
		return
	}
	c.mu.Lock()
	if len(c.load) > 0 && s.T < c.load[len(c.load)-1].T {
		c.load = nil // a new run
	}
	c.load = append(c.load, s)
	if len(c.load) > maxLoadSeconds {
		c.load = c.load[len(c.load)-maxLoadSeconds:]
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Load is what the load-test page shows.
type Load struct {
	Seconds []LoadSecond
	Last    LoadSecond
	Routes  []string
}

func (c *Console) loadtest(*http.Request) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := Load{Seconds: slices.Clone(c.load)}
	if n := len(l.Seconds); n > 0 {
		l.Last = l.Seconds[n-1]
		for r := range l.Last.Routes {
			l.Routes = append(l.Routes, r)
		}
		slices.Sort(l.Routes)
	}
	return l, nil
}

// fragment is what the page's script puts in place: the HTML of element
// ID, or inserted first in it (Prepend).
type fragment struct {
	ID      string `json:"id"`
	HTML    string `json:"html"`
	Prepend bool   `json:"prepend,omitempty"`
	Seq     int64  `json:"seq"`
}

// live names, per view, the template of its live part and its data.
var live = map[string]string{"pipeline": "pipeline-live", "email": "email-live", "replays": "replays-live", "loadtest": "loadtest-live"}

// liveFragment renders view's live part for smp, once per sample and view
// however many pages watch it.
func (c *Console) liveFragment(r *http.Request, view string, smp Sample) (string, error) {
	c.mu.Lock()
	if f, ok := c.rendered[view]; ok && f.at.Equal(smp.At) {
		c.mu.Unlock()
		return f.html, nil
	}
	c.mu.Unlock()
	var data any = smp
	switch view {
	case "replays":
		data, _ = c.replays(r)
	case "loadtest":
		data, _ = c.loadtest(r)
	}
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, live[view], data); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.rendered[view] = rendered{at: smp.At, html: buf.String()}
	c.mu.Unlock()
	return buf.String(), nil
}

// rendered is a view's live part as rendered for the sample taken at at.
type rendered struct {
	at   time.Time
	html string
}

// events streams a view's live part once a sample, and on the orders
// view the stock notices as they come.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	view := r.URL.Query().Get("view")
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	ctx := r.Context()
	send := func(f fragment) bool {
		c.seqMu.Lock()
		c.seq++
		f.Seq = c.seq
		c.seqMu.Unlock()
		b, _ := json.Marshal(f)
		if _, err := fmt.Fprintf(w, "event: fragment\ndata: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	var notices <-chan stockwatch.Notice
	if view == "orders" && c.cfg.SoldOut != nil {
		notices = c.cfg.SoldOut(ctx)
	}
	samples := c.smp.subscribe(ctx)
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case n := <-notices:
			var buf bytes.Buffer
			if err := c.tmpl.ExecuteTemplate(&buf, "notice", map[string]any{"Notice": n, "At": time.Now()}); err != nil || !send(fragment{ID: "notices", HTML: buf.String(), Prepend: true}) {
				return
			}
		case smp := <-samples:
			if _, ok := live[view]; !ok {
				continue
			}
			html, err := c.liveFragment(r, view, smp)
			if err != nil {
				c.cfg.Logger.Error("console: render", "view", view, "err", err)
				return
			}
			if !send(fragment{ID: "live", HTML: html}) {
				return
			}
		}
	}
}
