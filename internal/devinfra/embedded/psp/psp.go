// Package psp runs an in-process payment gateway simulator over HTTP, for
// `shop dev` and tests: one instance plays the card PSP (KindCard), another
// the SEPA bank (KindSEPA). It behaves like the outside system the payment
// processors call, with the faults they must survive.
//
// API:
//
//	POST /charges                       header Idempotency-Key (required)
//	     {"order_id","amount_cents","currency","method"}
//	  201 {"charge_id","status":"succeeded","order_id"}
//	  402 {"status":"declined","reason":"card_declined"|"insufficient_funds","order_id"}
//	  400 no key / malformed body, 422 key reused with another body,
//	  503 injected unavailability or shutdown (nothing recorded)
//	GET  /charges[?order_id=]           {"charges":[…]} every decided attempt, in order
//	POST /charges/{charge_id}/refund    200 {"charge_id","status":"refunded","order_id"}
//	     (refunding again answers the same), 404 unknown or declined charge
//
// Guarantees:
//   - Each answer waits the configured latency, jittered uniformly within ±50%.
//   - An idempotency key is decided once. The same key again gets the same
//     answer (status and body, with `Idempotent-Replayed: true`) and no new
//     charge. If the first request with that key is still in progress, the
//     second waits for its answer.
//   - A decline (probability FailureRate) is a business answer. It depends
//     only on Seed and the key, so it is stable for the key, even across
//     restarts without a file.
//   - The simulator keeps processing a charge after the client has gone
//     (a real PSP does not see the client's timeout). TimeoutRate injects the
//     case that matters: the charge is recorded, then the answer is held until
//     the client gives up (or TimeoutDelay passes). The client's retry with the
//     same key then gets the stored answer, so the order is charged only once.
//   - UnavailableRate injects a 503 before anything is recorded.
//
// Persistence: with Config.File set, every decided key is appended to that
// file as one JSON line before the answer is sent, and a restart reloads the
// file, so replays and "charged once" hold across `shop dev` restarts. The
// file is not fsynced: it survives a process crash, not a power loss. With
// no File, state is in memory and a restart loses every charge (a replayed
// key is then charged again).
package psp

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Kind names what the simulator plays; it sets charge id prefixes and the
// decline reason.
type Kind string

const (
	KindCard Kind = "card" // card PSP: ids "ch_…", declines "card_declined"
	KindSEPA Kind = "sepa" // SEPA bank: ids "sdd_…", declines "insufficient_funds"
)

// Statuses of a decided charge.
const (
	StatusSucceeded = "succeeded"
	StatusDeclined  = "declined"
)

// Config configures a simulator.
type Config struct {
	Kind Kind   // default KindCard
	Addr string // listen address; default 127.0.0.1:0
	// File, if set, is the JSON-lines file decided charges are appended to
	// and reloaded from at start; empty keeps everything in memory.
	File string
	// Latency is the mean time before an answer, jittered ±50%; 0 answers at once.
	Latency time.Duration
	// FailureRate is the probability in [0,1] that a new key is declined (402).
	FailureRate float64
	// TimeoutRate is the probability in [0,1] that the request creating a
	// charge records it and then withholds the answer until the client
	// disconnects or TimeoutDelay passes. Replays always answer.
	TimeoutRate float64
	// TimeoutDelay bounds how long a withheld answer is held; default 30s.
	TimeoutDelay time.Duration
	// UnavailableRate is the probability in [0,1] that any POST answers 503
	// (after the latency) without recording anything.
	UnavailableRate float64
	// Seed drives the decline decision per key and the jitter and fault
	// rolls; the same Seed and key always get the same decline decision.
	Seed   int64
	Logger *slog.Logger // optional
}

// ChargeRequest is the body of POST /charges.
type ChargeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Method      string `json:"method"`
}

// Charge is one decided key, as listed by GET /charges and persisted.
type Charge struct {
	ChargeID       string    `json:"charge_id,omitempty"` // empty when declined
	IdempotencyKey string    `json:"idempotency_key"`
	OrderID        string    `json:"order_id"`
	AmountCents    int64     `json:"amount_cents"`
	Currency       string    `json:"currency"`
	Method         string    `json:"method,omitempty"`
	Status         string    `json:"status"` // StatusSucceeded or StatusDeclined
	Reason         string    `json:"reason,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	// RefundedAt is when a succeeded charge was refunded; nil: never.
	RefundedAt *time.Time `json:"refunded_at,omitempty"`
}

// Stats counts what the simulator has seen since it started.
type Stats struct {
	Requests    int // well-formed POST /charges received (replays included)
	Replays     int // answered from a stored decision
	Charges     int // succeeded charges (money moved), reloaded ones included
	Declines    int // declined keys, reloaded ones included
	Timeouts    int // answers withheld by TimeoutRate
	Unavailable int // 503s injected by UnavailableRate
	Refunds     int // succeeded charges refunded, reloaded ones included
}

// entry is one idempotency key: in flight until done is closed, then
// decided (charge set) or abandoned (charge nil, removed from the map).
type entry struct {
	req    ChargeRequest
	done   chan struct{}
	charge *Charge
}

// Server is a running simulator.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	quit chan struct{}
	stop sync.Once
	done chan struct{}

	mu      sync.Mutex
	rng     *rand.Rand
	entries map[string]*entry
	list    []*Charge
	stats   Stats
	file    *os.File

	connMu sync.Mutex
	conns  map[net.Conn]http.ConnState
}

// Start loads Config.File (if any) and serves the simulator until Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.Kind = cmp.Or(cfg.Kind, KindCard)
	if cfg.Kind != KindCard && cfg.Kind != KindSEPA {
		return nil, fmt.Errorf("psp: unknown kind %q", cfg.Kind)
	}
	for name, r := range map[string]float64{"failure": cfg.FailureRate, "timeout": cfg.TimeoutRate, "unavailable": cfg.UnavailableRate} {
		if r < 0 || r > 1 {
			return nil, fmt.Errorf("psp: %s rate %v outside [0,1]", name, r)
		}
	}
	if cfg.Latency < 0 {
		return nil, fmt.Errorf("psp: negative latency %v", cfg.Latency)
	}
	cfg.TimeoutDelay = cmp.Or(cfg.TimeoutDelay, 30*time.Second)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "psp-"+string(cfg.Kind))
	s := &Server{
		cfg:     cfg,
		log:     log,
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		entries: map[string]*entry{},
		conns:   map[net.Conn]http.ConnState{},
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	addr := cmp.Or(cfg.Addr, "127.0.0.1:0")
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		s.closeFile()
		return nil, fmt.Errorf("psp %s listen %s: %w", cfg.Kind, addr, err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charges", s.postCharge)
	mux.HandleFunc("GET /charges", s.listCharges)
	mux.HandleFunc("POST /charges/{id}/refund", s.refund)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: s.track}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("psp simulator stopped", "err", err)
		}
	}()
	log.Info("payment gateway simulator started", "url", s.URL(), "latency", cfg.Latency,
		"failure_rate", cfg.FailureRate, "timeout_rate", cfg.TimeoutRate,
		"unavailable_rate", cfg.UnavailableRate, "file", cfg.File, "loaded", len(s.list))
	return s, nil
}

// URL is the simulator's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the listen address (host:port), to restart on the same one.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Kind is what the simulator plays.
func (s *Server) Kind() Kind { return s.cfg.Kind }

// Stop stops serving: requests in flight that have not decided yet get a
// 503 and record nothing; withheld answers are released. Counts and the
// charge list stay readable.
func (s *Server) Stop(ctx context.Context) error {
	s.stop.Do(func() { close(s.quit) })
	// Shutdown waits up to 5s for connections that never sent a request
	// (a client's spare dials): close those meanwhile.
	shut := make(chan error, 1)
	go func() { shut <- s.srv.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-shut:
			break wait
		case <-tick.C:
			s.closeNew()
		}
	}
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFile()
	return err
}

func (s *Server) track(c net.Conn, st http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(s.conns, c)
		return
	}
	s.conns[c] = st
}

func (s *Server) closeNew() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c, st := range s.conns {
		if st == http.StateNew {
			_ = c.Close()
		}
	}
}

// Charges is the number of succeeded charges.
func (s *Server) Charges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Charges
}

// ChargesFor is the number of succeeded charges for one order.
func (s *Server) ChargesFor(orderID string) int {
	n := 0
	for _, c := range s.List(orderID) {
		if c.Status == StatusSucceeded {
			n++
		}
	}
	return n
}

// Outstanding is the number of succeeded charges of an order that were
// not refunded: the money the order still holds.
func (s *Server) Outstanding(orderID string) int {
	n := 0
	for _, c := range s.List(orderID) {
		if c.Status == StatusSucceeded && c.RefundedAt == nil {
			n++
		}
	}
	return n
}

// refund gives a succeeded charge's money back, once: again, it answers
// the same. The refund is persisted (the charge's line again, with
// refunded_at) before the answer.
func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	var c *Charge
	for _, x := range s.list {
		if x.ChargeID == id && x.Status == StatusSucceeded {
			c = x
		}
	}
	if c == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, answer{Status: "error", Reason: "no succeeded charge " + id})
		return
	}
	first := c.RefundedAt == nil
	if first {
		now := time.Now().UTC()
		c.RefundedAt = &now
		s.stats.Refunds++
	}
	line := *c
	s.mu.Unlock()
	if first {
		if err := s.persist(&line); err != nil {
			s.log.Error("persist refund", "charge_id", id, "err", err)
			writeJSON(w, http.StatusInternalServerError, answer{Status: "error", Reason: "could not persist the refund"})
			return
		}
		s.log.Debug("charge refunded", "charge_id", id, "order_id", line.OrderID)
	}
	writeJSON(w, http.StatusOK, answer{ChargeID: id, Status: "refunded", OrderID: line.OrderID})
}

// List returns the decided charges (succeeded and declined) for an order,
// or all of them when orderID is empty, in decision order.
func (s *Server) List(orderID string) []Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Charge{}
	for _, c := range s.list {
		if orderID == "" || c.OrderID == orderID {
			out = append(out, *c)
		}
	}
	return out
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

type answer struct {
	ChargeID string `json:"charge_id,omitempty"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	OrderID  string `json:"order_id,omitempty"`
}

func (s *Server) postCharge(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		writeJSON(w, http.StatusBadRequest, answer{Status: "error", Reason: "missing Idempotency-Key header"})
		return
	}
	var req ChargeRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, answer{Status: "error", Reason: "malformed body: " + err.Error()})
		return
	}
	if req.OrderID == "" || req.AmountCents <= 0 || req.Currency == "" {
		writeJSON(w, http.StatusBadRequest, answer{Status: "error", Reason: "order_id, a positive amount_cents and currency are required"})
		return
	}

	s.mu.Lock()
	s.stats.Requests++
	unavailable := s.roll(s.cfg.UnavailableRate)
	if unavailable {
		s.stats.Unavailable++
	}
	e, replay := s.entries[key]
	if !replay && !unavailable {
		e = &entry{req: req, done: make(chan struct{})}
		s.entries[key] = e
	}
	s.mu.Unlock()

	if unavailable {
		if s.sleep() {
			writeJSON(w, http.StatusServiceUnavailable, answer{Status: "error", Reason: "unavailable"})
		} else {
			s.stopping(w)
		}
		return
	}
	if replay {
		s.replay(w, r, key, e, req)
		return
	}

	// This request owns the key. The client going away does not stop it:
	// only a shutdown before the decision abandons the charge.
	if !s.sleep() {
		s.abandon(key, e)
		s.stopping(w)
		return
	}
	c := s.decide(key, req)
	if err := s.persist(c); err != nil {
		s.log.Error("persist charge", "key", key, "err", err)
		s.abandon(key, e)
		writeJSON(w, http.StatusInternalServerError, answer{Status: "error", Reason: "could not persist the charge"})
		return
	}
	s.mu.Lock()
	e.charge = c
	s.list = append(s.list, c)
	s.count(c)
	withhold := s.roll(s.cfg.TimeoutRate)
	if withhold {
		s.stats.Timeouts++
	}
	s.mu.Unlock()
	close(e.done)
	s.log.Debug("charge decided", "key", key, "order_id", c.OrderID, "status", c.Status, "charge_id", c.ChargeID, "withheld", withhold)

	if withhold {
		t := time.NewTimer(s.cfg.TimeoutDelay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return // the client timed out after the charge
		case <-s.quit:
		case <-t.C:
		}
	}
	writeCharge(w, c, false)
}

// replay answers a key seen before, waiting for its decision if needed.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, key string, e *entry, req ChargeRequest) {
	if e.req != req {
		writeJSON(w, http.StatusUnprocessableEntity, answer{Status: "error", Reason: "idempotency key reused with another request"})
		return
	}
	select {
	case <-e.done:
	case <-r.Context().Done():
		return
	case <-s.quit:
		s.stopping(w)
		return
	}
	if e.charge == nil { // the first request was abandoned before deciding
		writeJSON(w, http.StatusServiceUnavailable, answer{Status: "error", Reason: "unavailable"})
		return
	}
	s.mu.Lock()
	s.stats.Replays++
	s.mu.Unlock()
	s.log.Debug("charge replayed", "key", key, "order_id", e.charge.OrderID, "status", e.charge.Status)
	writeCharge(w, e.charge, true)
}

func (s *Server) listCharges(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Charges []Charge `json:"charges"`
	}{s.List(r.URL.Query().Get("order_id"))})
}

// decide turns a new key into a charge: declined with probability
// FailureRate, as a function of Seed and the key only.
func (s *Server) decide(key string, req ChargeRequest) *Charge {
	c := &Charge{
		IdempotencyKey: key, OrderID: req.OrderID, AmountCents: req.AmountCents,
		Currency: req.Currency, Method: req.Method, CreatedAt: time.Now().UTC(),
	}
	if declines(s.cfg.Seed, key, s.cfg.FailureRate) {
		c.Status = StatusDeclined
		c.Reason = "card_declined"
		if s.cfg.Kind == KindSEPA {
			c.Reason = "insufficient_funds"
		}
		return c
	}
	c.Status = StatusSucceeded
	prefix := "ch_"
	if s.cfg.Kind == KindSEPA {
		prefix = "sdd_"
	}
	c.ChargeID = prefix + uuid.NewString()
	return c
}

// declines maps (seed, key) to a uniform number in [0,1) and compares it
// with rate.
func declines(seed int64, key string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, seed)
	h.Write([]byte(key))
	u := float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53)
	return u < rate
}

// roll draws a fault with probability p; s.mu must be held.
func (s *Server) roll(p float64) bool {
	return p > 0 && s.rng.Float64() < p
}

// sleep waits the jittered latency; false if the server is stopping.
func (s *Server) sleep() bool {
	if s.cfg.Latency <= 0 {
		select {
		case <-s.quit:
			return false
		default:
			return true
		}
	}
	s.mu.Lock()
	d := time.Duration(float64(s.cfg.Latency) * (0.5 + s.rng.Float64()))
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}

// abandon forgets an undecided key so that a retry starts afresh.
func (s *Server) abandon(key string, e *entry) {
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
	close(e.done)
}

func (s *Server) stopping(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusServiceUnavailable, answer{Status: "error", Reason: "shutting down"})
}

// count updates the counters for a decided charge; s.mu must be held.
func (s *Server) count(c *Charge) {
	if c.Status == StatusSucceeded {
		s.stats.Charges++
	} else {
		s.stats.Declines++
	}
}

func writeCharge(w http.ResponseWriter, c *Charge, replayed bool) {
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if c.Status == StatusSucceeded {
		writeJSON(w, http.StatusCreated, answer{ChargeID: c.ChargeID, Status: c.Status, OrderID: c.OrderID})
		return
	}
	writeJSON(w, http.StatusPaymentRequired, answer{Status: c.Status, Reason: c.Reason, OrderID: c.OrderID})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// persist appends a decided charge to the file, if any.
func (s *Server) persist(c *Charge) error {
	if s.cfg.File == "" {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return errors.New("psp: stopped")
	}
	_, err = s.file.Write(append(b, '\n'))
	return err
}

// load reads the file (if any) and opens it for appending. A torn last
// line (a crash mid-write) is ignored: its charge was never answered.
func (s *Server) load() error {
	if s.cfg.File == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.File), 0o755); err != nil {
		return fmt.Errorf("psp: %w", err)
	}
	f, err := os.OpenFile(s.cfg.File, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("psp: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var good int64 // bytes up to the end of the last good line
	var torn error
	for line := 1; sc.Scan(); line++ {
		if torn != nil { // a bad line followed by more lines is corruption
			_ = f.Close()
			return torn
		}
		var c Charge
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.IdempotencyKey == "" {
			torn = fmt.Errorf("psp: %s line %d: malformed charge", s.cfg.File, line)
			continue
		}
		good += int64(len(sc.Bytes())) + 1
		if e, dup := s.entries[c.IdempotencyKey]; dup {
			if c.RefundedAt != nil && e.charge.RefundedAt == nil { // a refund's line
				e.charge.RefundedAt = c.RefundedAt
				s.stats.Refunds++
			}
			continue
		}
		req := ChargeRequest{OrderID: c.OrderID, AmountCents: c.AmountCents, Currency: c.Currency, Method: c.Method}
		e := &entry{req: req, done: make(chan struct{}), charge: &c}
		close(e.done)
		s.entries[c.IdempotencyKey] = e
		s.list = append(s.list, &c)
		s.count(&c)
	}
	if err := sc.Err(); err != nil {
		_ = f.Close()
		return fmt.Errorf("psp: read %s: %w", s.cfg.File, err)
	}
	if torn != nil {
		// A torn last line (a crash mid-append): its charge was never
		// answered, so drop it and append after the last good line.
		if err := f.Truncate(good); err != nil {
			_ = f.Close()
			return fmt.Errorf("psp: %w", err)
		}
		s.log.Warn("dropped a torn last line from the charges file", "file", s.cfg.File)
	} else if st, err := f.Stat(); err == nil && st.Size() < good {
		// The last line lacks its newline: add it so appends start clean.
		if _, err := f.Write([]byte("\n")); err != nil {
			_ = f.Close()
			return fmt.Errorf("psp: %w", err)
		}
	}
	s.file = f
	return nil
}

// closeFile closes the charges file; s.mu must be held (or the server not
// yet serving).
func (s *Server) closeFile() {
	if s.file != nil {
		_ = s.file.Close()
		s.file = nil
	}
}
