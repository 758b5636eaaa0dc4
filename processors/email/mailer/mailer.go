// Package mailer sends one email per call through an SMTP relay: the embedded
// server of `shop dev` (internal/devinfra/embedded/smtpd) or any relay in production
// (plain, STARTTLS or implicit TLS; AUTH PLAIN when credentials are set).
//
// A message is built as RFC 5322 + MIME: a text/plain part (UTF-8,
// quoted-printable) and, when there are attachments, a multipart/mixed body
// with each attachment base64-encoded. The Message-ID is the caller's, so the
// same email sent again (a retried effect) carries the same Message-ID and is
// recognisable as a duplicate by whoever receives it.
//
// Errors say whether a retry can help. errors.Is(err, ErrPermanent) holds for
// an SMTP 5xx reply (the relay refuses this message for good: unknown
// recipient, message too large, authentication refused) and for a message
// that cannot be built (bad address, header injection); anything else (a 4xx
// reply, a network error, a timeout, the context ending) is transient.
//
// Note that a transient error after the message was handed over (the
// connection lost before the relay's final reply) does not prove the message
// was not delivered: a retry may then deliver it twice, with the same
// Message-ID.
package mailer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// ErrPermanent is matched (errors.Is) by errors no retry can fix.
var ErrPermanent = errors.New("permanent failure")

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// TLS modes for Config.TLS.
const (
	TLSNone     = ""         // plain SMTP (the embedded dev server)
	TLSStartTLS = "starttls" // STARTTLS required (submission, port 587)
	TLSImplicit = "implicit" // TLS from the first byte (port 465)
)

// Config configures a Mailer.
type Config struct {
	Addr    string        // relay host:port
	From    string        // sender, RFC 5322: "shopstream <shop@example.org>"
	Timeout time.Duration // bounds one Send, connection included; default DefaultTimeout

	// TLS is TLSNone (default), TLSStartTLS or TLSImplicit.
	TLS string
	// TLSConfig optionally configures TLS (roots, server name).
	TLSConfig *tls.Config
	// LocalName is the name given in EHLO; default "localhost".
	LocalName string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN. Credentials are only sent over TLS or to a loopback relay.
	Username, Password string
}

// Mailer sends emails. It is safe for concurrent use; each Send uses its
// own connection.
type Mailer struct {
	cfg  Config
	from *mail.Address
	host string
}

// New validates cfg and returns a Mailer. It does not connect.
func New(cfg Config) (*Mailer, error) {
	if cfg.Addr == "" {
		return nil, errors.New("mailer: Config.Addr is required")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailer: Config.Addr: %w", err)
	}
	from, err := parseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mailer: Config.From: %w", err)
	}
	switch cfg.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("mailer: Config.TLS %q: want %q, %q or %q", cfg.TLS, TLSNone, TLSStartTLS, TLSImplicit)
	}
	if cfg.Username != "" && cfg.TLS == TLSNone && !isLoopback(host) {
		return nil, errors.New("mailer: refusing to send credentials without TLS to a non-loopback relay (set Config.TLS)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	return &Mailer{cfg: cfg, from: from, host: host}, nil
}

// Message is one email.
type Message struct {
	// MessageID becomes the Message-ID header, "<" + MessageID + ">": a
	// stable id such as "invoice-<order id>@shopstream" makes a resend
	// recognisable. Required, "left@right" (angle brackets optional).
	MessageID   string
	To          string // one recipient, RFC 5322: "Zinédine <zizou@example.org>"
	Subject     string
	Text        string // the text/plain body; line breaks are sent as CRLF
	Attachments []Attachment
}

// Attachment is a file attached to a Message.
type Attachment struct {
	Name        string // file name shown to the recipient, e.g. "invoice-42.pdf"
	ContentType string // e.g. "application/pdf"; default application/octet-stream
	Data        []byte
}

// Error is a failed SMTP exchange.
type Error struct {
	Op       string // "dial", "tls", "auth", "mail", "rcpt", "data", ...
	Code     int    // SMTP reply code; 0 when there was no reply
	Enhanced string // enhanced status code ("5.1.1"), when the relay sent one
	Err      error
}

func (e *Error) Error() string { return fmt.Sprintf("mailer: %s: %v", e.Op, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports a 5xx reply.
func (e *Error) Permanent() bool { return e.Code >= 500 && e.Code < 600 }

// Temporary reports that a retry may succeed.
func (e *Error) Temporary() bool { return !e.Permanent() }

// Is makes errors.Is(err, ErrPermanent) true for 5xx replies.
func (e *Error) Is(target error) bool { return target == ErrPermanent && e.Permanent() }

func opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Err: err}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		e.Code = se.Code
		if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != smtp.EnhancedCodeNotSet {
			c := se.EnhancedCode
			e.Enhanced = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
		}
	}
	return e
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("mailer: invalid message: %w: "+format, append([]any{ErrPermanent}, args...)...)
}

// Send builds msg and hands it to the relay. It returns once the relay has
// accepted it (250 after DATA) or with an error; see the package comment for
// which errors are permanent. It is Prepare then Commit.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	p, err := m.Prepare(ctx, msg)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a message whose transaction with the relay is open up to the
// DATA command's 354 reply: Commit hands the message over, Abort leaves
// nothing sent. It lets a caller pace the moment the relay receives a
// message (one write and one round trip after Commit) rather than the start
// of a conversation of several round trips, whose length varies.
type Pending struct {
	ctx     context.Context // the caller's: Commit refuses once it ended
	timeout time.Duration
	conn    net.Conn
	c       *smtp.Client
	w       io.WriteCloser
	raw     []byte
}

// Prepare builds msg, connects to the relay and runs the transaction up to
// DATA. The Pending holds the connection until Commit or Abort, one of
// which must be called. Config.Timeout bounds Prepare, and separately
// Commit: the wait between them (a pacer's slot) is the caller's, and ctx
// ending before Commit aborts the message. A relay drops a connection left
// idle in DATA after its own timeout (minutes, RFC 5321 suggests 10):
// Commit then fails with a transient error.
func (m *Mailer) Prepare(ctx context.Context, msg Message) (_ *Pending, err error) {
	to, err := parseAddress(msg.To)
	if err != nil {
		return nil, invalid("To: %v", err)
	}
	raw, err := m.Build(msg, time.Now())
	if err != nil {
		return nil, err
	}

	p := &Pending{ctx: ctx, timeout: m.cfg.Timeout, raw: raw}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	defer func() {
		if err != nil {
			p.Abort()
			err = ctxErr(pctx, err)
		}
	}()

	d := net.Dialer{}
	conn, err := d.DialContext(pctx, "tcp", m.cfg.Addr)
	if err != nil {
		return nil, opErr("dial", err)
	}
	p.conn = conn
	// The client sets per-command deadlines; the end of Prepare's context
	// closes the socket (not once Prepare has returned).
	stop := context.AfterFunc(pctx, func() { conn.Close() })
	defer stop()

	if m.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, m.tlsConfig())
		if err := tc.HandshakeContext(pctx); err != nil {
			return nil, opErr("tls", err)
		}
		conn = tc
	}
	if m.cfg.TLS == TLSStartTLS {
		p.c, err = smtp.NewClientStartTLS(conn, m.tlsConfig())
		if err != nil {
			return nil, opErr("starttls", err)
		}
	} else {
		p.c = smtp.NewClient(conn)
	}
	// A backstop only: the context ends first, closes the socket, and the
	// error then names the context.
	p.c.CommandTimeout, p.c.SubmissionTimeout = m.cfg.Timeout+time.Second, m.cfg.Timeout+time.Second
	if err := p.c.Hello(m.cfg.LocalName); err != nil {
		return nil, opErr("ehlo", err)
	}

	if m.cfg.Username != "" {
		if ok, _ := p.c.Extension("AUTH"); !ok {
			return nil, opErr("auth", errors.New("relay does not offer AUTH"))
		}
		if err := p.c.Auth(sasl.NewPlainClient("", m.cfg.Username, m.cfg.Password)); err != nil {
			return nil, opErr("auth", err)
		}
	}

	opts := &smtp.MailOptions{Size: int64(len(raw))}
	if !isASCII(m.from.Address) || !isASCII(to.Address) {
		if ok, _ := p.c.Extension("SMTPUTF8"); !ok {
			return nil, invalid("the relay does not accept non-ASCII addresses (no SMTPUTF8)")
		}
		opts.UTF8 = true
	}
	if err := p.c.Mail(m.from.Address, opts); err != nil {
		return nil, opErr("mail", err)
	}
	if err := p.c.Rcpt(to.Address, nil); err != nil {
		return nil, opErr("rcpt", err)
	}
	if p.w, err = p.c.Data(); err != nil {
		return nil, opErr("data", err)
	}
	return p, nil
}

// Commit writes the message and waits for the relay's 250; see the package
// comment for the errors. The Pending is done either way.
func (p *Pending) Commit() (err error) {
	defer p.Abort()
	if err := p.ctx.Err(); err != nil {
		return ctxErr(p.ctx, opErr("data", err)) // ended while waiting: nothing is handed over
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	conn := p.conn
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer func() { err = ctxErr(ctx, err) }()
	if _, err := p.w.Write(p.raw); err != nil {
		return opErr("data", err)
	}
	if err := p.w.Close(); err != nil {
		return opErr("data", err)
	}
	_ = p.c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// Abort closes the connection without ending the DATA, so the relay
// discards the message. It is a no-op after Commit and safe to call twice.
func (p *Pending) Abort() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// ctxErr reports the context's end rather than the closed socket it caused.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	op := "send"
	var me *Error
	if errors.As(err, &me) {
		if me.Code != 0 { // the relay's reply says more
			return err
		}
		op = me.Op
	}
	return &Error{Op: op, Err: fmt.Errorf("%w (%v)", ctx.Err(), err)}
}

func (m *Mailer) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if m.cfg.TLSConfig != nil {
		cfg = m.cfg.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = m.host
	}
	return cfg
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Build returns msg as the bytes Send transmits (CRLF line endings), dated
// now. Errors match ErrPermanent.
func (m *Mailer) Build(msg Message, now time.Time) ([]byte, error) {
	to, err := parseAddress(msg.To)
	if err != nil {
		return nil, invalid("To: %v", err)
	}
	id, err := messageID(msg.MessageID)
	if err != nil {
		return nil, invalid("MessageID: %v", err)
	}
	if err := headerText(msg.Subject); err != nil {
		return nil, invalid("Subject: %v", err)
	}
	if !utf8.ValidString(msg.Text) {
		return nil, invalid("Text is not valid UTF-8")
	}

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(fold(name, value)) }
	header("From", m.from.String())
	header("To", to.String())
	header("Subject", encodeWords(msg.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+id+">")
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies

	if len(msg.Attachments) == 0 {
		header("Content-Type", "text/plain; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, msg.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}

	mw := multipart.NewWriter(&b)
	// A boundary starting "=_" cannot occur in quoted-printable or base64
	// text; deriving it from the id keeps a resend's body identical.
	sum := sha256.Sum256([]byte(id))
	if err := mw.SetBoundary("=_shopstream_" + hex.EncodeToString(sum[:12])); err != nil {
		return nil, err
	}
	header("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")

	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, err
	}
	if err := writeQP(pw, msg.Text); err != nil {
		return nil, err
	}
	for i, a := range msg.Attachments {
		name := a.Name
		if err := headerText(name); err != nil || strings.TrimSpace(name) == "" || len(name) > 255 ||
			strings.ContainsAny(name, `/\`) {
			return nil, invalid("attachment %d: bad name %q", i+1, name)
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") {
			return nil, invalid("attachment %d: bad content type %q", i+1, a.ContentType)
		}
		params["name"] = name
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(mt, params)},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": name})},
			"Content-Transfer-Encoding": {"base64"},
		})
		if err != nil {
			return nil, err
		}
		writeBase64(pw, a.Data)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func parseAddress(s string) (*mail.Address, error) {
	if err := headerText(s); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return a, nil
}

// headerText refuses what cannot go into a header: invalid UTF-8 and
// control characters (CR and LF would inject headers).
func headerText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("contains control characters")
	}
	if len(s) > 900 {
		return errors.New("too long")
	}
	return nil
}

// messageID checks id as RFC 5322 id-left "@" id-right (dot-atom-text on
// both sides), angle brackets optional.
func messageID(id string) (string, error) {
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	left, right, ok := strings.Cut(id, "@")
	if !ok || !dotAtom(left) || !dotAtom(right) || len(id) > 250 {
		return "", fmt.Errorf("%q is not left@right", id)
	}
	return id, nil
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodeWords RFC 2047-encodes s when it is not plain ASCII.
func encodeWords(s string) string {
	if isASCII(s) {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// fold writes "Name: value\r\n", folding at spaces to keep lines within 78
// characters where the value allows it.
func fold(name, value string) string {
	var b strings.Builder
	line := name + ":"
	for i, w := range strings.Split(value, " ") {
		if i > 0 && len(line)+1+len(w) > 78 && strings.TrimSpace(line) != "" {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + w
	}
	b.WriteString(line + "\r\n")
	return b.String()
}

func writeQP(w io.Writer, text string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, text); err != nil {
		return err
	}
	return qp.Close()
}

func writeBase64(w io.Writer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	w.Write(b.Bytes()) // a bytes.Buffer underneath: cannot fail
}
