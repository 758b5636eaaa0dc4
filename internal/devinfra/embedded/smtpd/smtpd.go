// Package smtpd runs an in-process SMTP server for `shop dev` and tests: every
// message it accepts is stored as an `.eml` file (RFC 5322, as received, CRLF
// line endings) in a directory, `<data-dir>/mail/` under `shop dev`, where
// any mail client or `grep` can read it. Nothing is relayed anywhere.
//
// It is a development server: no authentication is required (AUTH PLAIN is
// offered, and any credentials are accepted, so a mailer configured for a
// production relay works against it unchanged), no TLS, and it listens on a
// loopback address unless Config.AllowRemote says otherwise. Messages over
// MaxMessageBytes are refused with 552.
//
// A message is answered 250 only once its file is durably in place: it is
// written to a temporary file in the same directory, synced, and renamed to
// `<timestamp>-<message-id>.eml` (timestamp in UTC, sortable, unique per
// server; message id sanitised for a file name), so a reader never sees a
// partial message and the files list in the order they arrived. A message
// sent twice (a retried send) is stored twice, under the same Message-ID.
// ReadMailbox reads such a directory back: each message parsed, with its
// receive time and its attachments.
package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	// DefaultAddr is the listen address used when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:0"
	// MaxMessageBytes is the largest message accepted by default.
	MaxMessageBytes = 10 << 20
	// MaxRecipients is the most RCPT TO one message may have.
	MaxRecipients = 100
	// Ext is the extension of stored messages.
	Ext = ".eml"
)

// Config configures the server.
type Config struct {
	// Addr is the TCP listen address; default DefaultAddr (a free port).
	Addr string
	// Dir receives one .eml file per accepted message. Required; created if
	// missing.
	Dir string
	// Logger receives one line per stored message and the server's errors;
	// nil discards them.
	Logger *slog.Logger
	// AllowRemote permits a listen address that is not loopback. Off, Start
	// refuses one: this server takes mail from anyone without credentials.
	AllowRemote bool
	// MaxMessageBytes overrides MaxMessageBytes when positive.
	MaxMessageBytes int64
}

// Server is a running SMTP server.
type Server struct {
	srv  *smtp.Server
	ln   *trackingListener
	dir  string
	log  *slog.Logger
	done chan struct{} // closed when Serve has returned

	mu   sync.Mutex
	last time.Time // timestamp of the last stored message, for uniqueness

	stopOnce sync.Once
	stopErr  error
}

// Start listens on cfg.Addr and serves until Stop. ctx bounds startup only.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("smtpd: %w", err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("smtpd: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("smtpd: mail dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("smtpd: create mail dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "smtpd")
	// Temporary files left by a crash mid-message were never acknowledged:
	// their senders will retry.
	if stale, _ := filepath.Glob(filepath.Join(dir, ".incoming-*.tmp")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
		log.Info("removed unfinished messages", "count", len(stale))
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpd: listen: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !cfg.AllowRemote && (!ok || !tcp.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("smtpd: %s is not a loopback address (set AllowRemote to listen on it)", ln.Addr())
	}

	s := &Server{ln: &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}, dir: dir, log: log, done: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, remote: c.Conn().RemoteAddr().String(), helo: c.Hostname()}, nil
	}))
	srv.Domain = "localhost"
	srv.MaxMessageBytes = MaxMessageBytes
	if cfg.MaxMessageBytes > 0 {
		srv.MaxMessageBytes = cfg.MaxMessageBytes
	}
	srv.MaxRecipients = MaxRecipients
	srv.AllowInsecureAuth = true // dev only: credentials are accepted and ignored
	srv.EnableSMTPUTF8 = true    // the message is stored as bytes, whatever they are
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = errorLog{log}
	s.srv = srv

	go func() {
		defer close(s.done)
		if err := srv.Serve(s.ln); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("serve", "err", err)
		}
	}()
	log.Info("smtp server listening", "addr", ln.Addr().String(), "dir", dir)
	return s, nil
}

// Addr is the address the server listens on, e.g. "127.0.0.1:41025".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Dir is the absolute directory the messages are stored in.
func (s *Server) Dir() string { return s.dir }

// Stop closes the listener and waits for the open sessions to end: a message
// being received is finished and stored. When ctx ends first, the remaining
// connections are closed (their senders see an error and will retry) and
// Stop returns ctx's error. Stop is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		// Close the listener and let Serve return before Shutdown waits for
		// the sessions: go-smtp's Shutdown racing with Serve's accept loop
		// is a data race on its WaitGroup, and Shutdown only closes the
		// listeners Serve has registered (it may not have run yet).
		_ = s.ln.Close()
		<-s.done
		err := s.srv.Shutdown(ctx) // waits for the open sessions
		if err != nil && !errors.Is(err, net.ErrClosed) {
			// go-smtp's Close does nothing after a Shutdown: close the
			// connections still open ourselves.
			s.ln.closeConns()
			s.stopErr = fmt.Errorf("smtpd: stop: %w", err)
		}
	})
	return s.stopErr
}

// Messages returns the paths of the stored messages, oldest first.
// ReadMailbox(s.Dir()) reads and parses them.
func (s *Server) Messages() ([]string, error) {
	return listMessages(s.dir) // names start with a sortable UTC timestamp
}

// store writes one message atomically and returns its path.
func (s *Server) store(from string, to []string, remote, helo string, data []byte) (string, error) {
	id := "no-message-id"
	if m, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		if v := sanitise(m.Header.Get("Message-Id")); v != "" {
			id = v
		}
	}

	s.mu.Lock()
	// At the file name's precision: two messages within one microsecond
	// must not get the same name (the second would replace the first).
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(s.last) {
		now = s.last.Add(time.Microsecond)
	}
	s.last = now
	s.mu.Unlock()
	final := filepath.Join(s.dir, now.Format(receivedLayout)+"-"+id+Ext)

	// Trace headers, as a delivering MTA prepends them; X-Envelope-To shows
	// the recipients the headers do not name (Bcc).
	var head bytes.Buffer
	fmt.Fprintf(&head, "Return-Path: <%s>\r\n", oneLine(from))
	fmt.Fprintf(&head, "X-Envelope-To: %s\r\n", oneLine(strings.Join(to, ", ")))
	fmt.Fprintf(&head, "Received: from %s (%s)\r\n\tby localhost (shopstream smtpd) with ESMTP;\r\n\t%s\r\n",
		oneLine(helo), oneLine(remote), now.Format(time.RFC1123Z))

	tmp, err := os.CreateTemp(s.dir, ".incoming-*.tmp")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(head.Bytes()); err != nil {
		return "", err
	}
	if _, err := tmp.Write(data); err != nil {
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	ok = true
	if d, err := os.Open(s.dir); err == nil { // make the rename durable
		_ = d.Sync()
		d.Close()
	}
	return final, nil
}

// sanitise turns a Message-ID into a file-name fragment: brackets dropped,
// anything but letters, digits and ".-_+@=" replaced with "_", at most 100
// bytes.
func sanitise(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	b := []byte(id)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '_', c == '+', c == '@', c == '=':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return strings.Trim(string(b), ".")
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// session is one SMTP connection's state.
type session struct {
	s      *Server
	remote string
	helo   string
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		return nil // dev server: any credentials will do
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r) // bounded by MaxMessageBytes: smtp.ErrDataTooLarge
	if err != nil {
		ss.s.log.Warn("message refused", "from", ss.from, "to", ss.to, "err", err)
		return err
	}
	path, err := ss.s.store(ss.from, ss.to, ss.remote, ss.helo, data)
	if err != nil {
		ss.s.log.Error("store message", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message, try again later"}
	}
	ss.s.log.Info("message stored", "file", filepath.Base(path), "from", ss.from, "to", ss.to, "bytes", len(data))
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// trackingListener remembers the open connections, so that Stop can close
// them when a graceful shutdown runs out of time.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// errorLog adapts go-smtp's error logger to slog.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.l.Warn(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.l.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
