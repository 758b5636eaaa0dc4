package mailer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/processors/email/mailer"
	"shopstream/processors/invoicing/invoicepdf"
	"shopstream/processors/invoicing/invoicepdf/pdftest"
)

func startSMTPD(t *testing.T, cfg smtpd.Config) *smtpd.Server {
	t.Helper()
	cfg.Dir = filepath.Join(t.TempDir(), "mail")
	s, err := smtpd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s
}

func newMailer(t *testing.T, cfg mailer.Config) *mailer.Mailer {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "shopstream <shop@example.org>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	m, err := mailer.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func invoicePDF(t *testing.T) ([]byte, invoicepdf.Invoice) {
	t.Helper()
	inv := invoicepdf.Invoice{
		Number:   "INV-2024-000042",
		OrderID:  "7f7c3d1e-5b2a-4c41-9d7e-1a2b3c4d5e6f",
		IssuedAt: time.Date(2024, 11, 29, 9, 30, 0, 0, time.UTC),
		Customer: invoicepdf.Customer{ID: "368c748f-d636-4acb-a632-d5257ffb0764", Name: "Zinédine Zidane", Email: "zizou@example.org"},
		Lines: []invoicepdf.Line{
			{ProductID: "p-1", Title: "Maillot de l'OM 93", Quantity: 1, UnitPriceCents: 8999},
			{ProductID: "p-2", Title: "Écharpe", Quantity: 2, UnitPriceCents: 1250},
		},
		Currency: "EUR", TotalCents: 11499, PaymentMethod: "card",
	}
	doc, err := invoicepdf.Render(inv)
	if err != nil {
		t.Fatal(err)
	}
	return doc, inv
}

// text exercises quoted-printable: non-ASCII, a line over 76 characters,
// lines starting with dots (SMTP dot-stuffing), "=" and trailing spaces.
const text = "Bonjour Zinédine,\n\nVotre commande 7f7c3d1e est confirmée : 114,99 €. " +
	"Voici une très longue ligne qui dépasse largement les soixante-seize caractères autorisés.\n" +
	".\n..dots\na=b \nMerci !\n"

type part struct {
	header map[string][]string
	body   []byte // transfer-decoded
}

// readEML parses a stored message: its header and its MIME parts, decoded.
func readEML(t *testing.T, file string) (*mail.Message, []part) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf(".eml does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	decode := func(h map[string][]string, r io.Reader) []byte {
		switch cte := strings.ToLower(first(h["Content-Transfer-Encoding"])); cte {
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, r)
		default:
			t.Fatalf("unexpected Content-Transfer-Encoding %q", cte)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decode %s: %v", first(h["Content-Type"]), err)
		}
		return b
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return msg, []part{{msg.Header, decode(msg.Header, msg.Body)}}
	}
	if mt != "multipart/mixed" {
		t.Fatalf("Content-Type %s, want multipart/mixed", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		parts = append(parts, part{p.Header, decode(p.Header, p)})
	}
	return msg, parts
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func onlyMessage(t *testing.T, s *smtpd.Server) string {
	t.Helper()
	files, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("stored messages: %v, want 1", files)
	}
	return files[0]
}

func TestSendInvoiceRoundTripThroughSMTPD(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	doc, inv := invoicePDF(t)
	subject := "Votre facture " + inv.Number + " – commande " + inv.OrderID + ", merci pour votre achat chez shopstream"
	err := m.Send(context.Background(), mailer.Message{
		MessageID: "invoice-" + inv.OrderID + "@shopstream",
		To:        "Zinédine Zidane <zizou@example.org>",
		Subject:   subject,
		Text:      text,
		Attachments: []mailer.Attachment{
			{Name: "facture-" + inv.Number + ".pdf", ContentType: "application/pdf", Data: doc},
		},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}

	file := onlyMessage(t, s)
	msg, parts := readEML(t, file)
	h := msg.Header
	if got, want := h.Get("Message-Id"), "<invoice-"+inv.OrderID+"@shopstream>"; got != want {
		t.Errorf("Message-ID = %q, want %q", got, want)
	}
	if !strings.Contains(filepath.Base(file), "invoice-"+inv.OrderID+"@shopstream") {
		t.Errorf("file %s not named after the Message-ID", file)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Name != "Zinédine Zidane" || to[0].Address != "zizou@example.org" {
		t.Errorf("To = %q (%v)", h.Get("To"), err)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "shop@example.org" {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	if got, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || got != subject {
		t.Errorf("Subject = %q (%v), want %q", got, err, subject)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}
	if h.Get("Mime-Version") != "1.0" {
		t.Errorf("MIME-Version = %q", h.Get("Mime-Version"))
	}
	if got := h.Get("Return-Path"); got != "<shop@example.org>" {
		t.Errorf("envelope sender = %q", got)
	}
	if got := h.Get("X-Envelope-To"); got != "zizou@example.org" {
		t.Errorf("envelope recipient = %q", got)
	}
	// Every line within SMTP's limit, CRLF-terminated.
	raw, _ := os.ReadFile(file)
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 || strings.Contains(line, "\n") {
			t.Fatalf("line %d: %d bytes or bare LF: %q", i+1, len(line), line[:min(len(line), 80)])
		}
	}

	if len(parts) != 2 {
		t.Fatalf("%d MIME parts, want text + PDF", len(parts))
	}
	if ct, params, _ := mime.ParseMediaType(first(parts[0].header["Content-Type"])); ct != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("part 1 Content-Type %q", first(parts[0].header["Content-Type"]))
	}
	if got := string(parts[0].body); got != crlf(text) {
		t.Errorf("text part = %q, want %q", got, crlf(text))
	}

	pdfPart := parts[1]
	if ct, _, _ := mime.ParseMediaType(first(pdfPart.header["Content-Type"])); ct != "application/pdf" {
		t.Errorf("part 2 Content-Type %q", first(pdfPart.header["Content-Type"]))
	}
	disp, params, err := mime.ParseMediaType(first(pdfPart.header["Content-Disposition"]))
	if err != nil || disp != "attachment" || params["filename"] != "facture-"+inv.Number+".pdf" {
		t.Errorf("Content-Disposition %q", first(pdfPart.header["Content-Disposition"]))
	}
	if !bytes.Equal(pdfPart.body, doc) {
		t.Fatalf("attached PDF differs from the one sent (%d vs %d bytes)", len(pdfPart.body), len(doc))
	}

	// The attachment taken out of the .eml is a PDF poppler renders.
	renderPDF(t, pdfPart.body, inv.Number, "114,99 €")
}

func TestSendTextOnly(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	if err := m.Send(context.Background(), mailer.Message{
		MessageID: "<welcome-1@shopstream>", To: "zizou@example.org", Subject: "Bienvenue", Text: "Salut\n",
	}); err != nil {
		t.Fatal(err)
	}
	msg, parts := readEML(t, onlyMessage(t, s))
	if got := msg.Header.Get("Message-Id"); got != "<welcome-1@shopstream>" {
		t.Errorf("Message-ID = %q", got)
	}
	if len(parts) != 1 || string(parts[0].body) != "Salut\r\n" {
		t.Fatalf("parts = %+v", parts)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestResendIsRecognisable: the same message sent twice arrives twice with
// the same Message-ID and the same body.
func TestResendIsRecognisable(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	doc, _ := invoicePDF(t)
	msg := mailer.Message{
		MessageID: "invoice-42@shopstream", To: "zizou@example.org", Subject: "Facture", Text: text,
		Attachments: []mailer.Attachment{{Name: "facture.pdf", ContentType: "application/pdf", Data: doc}},
	}
	for range 2 {
		if err := m.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := s.Messages()
	if len(files) != 2 {
		t.Fatalf("stored %v, want 2", files)
	}
	var bodies [2][]byte
	for i, f := range files {
		raw, _ := os.ReadFile(f)
		em, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := em.Header.Get("Message-Id"); got != "<invoice-42@shopstream>" {
			t.Errorf("copy %d: Message-ID %q", i+1, got)
		}
		bodies[i], _ = io.ReadAll(em.Body)
	}
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Error("the two copies' bodies differ")
	}
}

func TestInvalidMessagesArePermanent(t *testing.T) {
	// Nothing listens here: a message that got as far as dialling would
	// fail with a transient error instead.
	m := newMailer(t, mailer.Config{Addr: closedAddr(t)})
	ok := mailer.Message{MessageID: "a@b", To: "zizou@example.org", Subject: "s", Text: "t"}
	cases := map[string]func(*mailer.Message){
		"no message id":        func(m *mailer.Message) { m.MessageID = "" },
		"message id without @": func(m *mailer.Message) { m.MessageID = "invoice-42" },
		"message id with space": func(m *mailer.Message) {
			m.MessageID = "invoice 42@shopstream"
		},
		"bad recipient":      func(m *mailer.Message) { m.To = "not an address" },
		"two recipients":     func(m *mailer.Message) { m.To = "a@example.org, b@example.org" },
		"header injection":   func(m *mailer.Message) { m.Subject = "hi\r\nBcc: victim@example.org" },
		"bad utf8 text":      func(m *mailer.Message) { m.Text = "\xff" },
		"attachment name":    func(m *mailer.Message) { m.Attachments = []mailer.Attachment{{Name: "../x.pdf"}} },
		"attachment type":    func(m *mailer.Message) { m.Attachments = []mailer.Attachment{{Name: "x", ContentType: "pdf"}} },
		"unnamed attachment": func(m *mailer.Message) { m.Attachments = []mailer.Attachment{{Data: []byte("x")}} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			msg := ok
			mutate(&msg)
			err := m.Send(context.Background(), msg)
			if !errors.Is(err, mailer.ErrPermanent) {
				t.Fatalf("err = %v, want ErrPermanent", err)
			}
		})
	}
	// The valid message itself fails transiently against the closed port.
	err := m.Send(context.Background(), ok)
	var me *mailer.Error
	if err == nil || errors.Is(err, mailer.ErrPermanent) || !errors.As(err, &me) || me.Op != "dial" || !me.Temporary() {
		t.Fatalf("closed port: err = %v, want a transient dial error", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]mailer.Config{
		"no addr":   {From: "shop@example.org"},
		"no port":   {Addr: "localhost", From: "shop@example.org"},
		"bad from":  {Addr: "localhost:25", From: "shop"},
		"bad tls":   {Addr: "localhost:25", From: "shop@example.org", TLS: "ssl"},
		"plaintext": {Addr: "smtp.example.org:25", From: "shop@example.org", Username: "u", Password: "p"},
	} {
		if _, err := mailer.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := mailer.New(mailer.Config{Addr: "127.0.0.1:25", From: "shop@example.org", Username: "u"}); err != nil {
		t.Errorf("credentials to a loopback relay refused: %v", err)
	}
}

// TestTooLargeIsPermanent: the relay's size limit answers 552.
func TestTooLargeIsPermanent(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{MaxMessageBytes: 64 << 10})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	err := m.Send(context.Background(), mailer.Message{
		MessageID: "big@shopstream", To: "zizou@example.org", Subject: "big", Text: "x",
		Attachments: []mailer.Attachment{{Name: "big.bin", Data: make([]byte, 100<<10)}},
	})
	var me *mailer.Error
	if !errors.Is(err, mailer.ErrPermanent) || !errors.As(err, &me) || me.Code != 552 {
		t.Fatalf("err = %v, want permanent 552", err)
	}
	if files, _ := s.Messages(); len(files) != 0 {
		t.Fatalf("stored %v", files)
	}
}

func TestSMTPRepliesClassified(t *testing.T) {
	for _, c := range []struct {
		name      string
		be        *fakeBackend
		op        string
		code      int
		permanent bool
	}{
		{"unknown recipient", &fakeBackend{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}, "rcpt", 550, true},
		{"greylisted", &fakeBackend{rcptErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}}, "rcpt", 451, false},
		{"sender refused", &fakeBackend{mailErr: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "not yours"}}, "mail", 553, true},
		{"quota", &fakeBackend{dataErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "quota"}}, "data", 452, false},
		{"content refused", &fakeBackend{dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "spam"}}, "data", 554, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := startFake(t, c.be, nil, false)
			m := newMailer(t, mailer.Config{Addr: addr})
			err := m.Send(context.Background(), mailer.Message{MessageID: "a@b", To: "zizou@example.org", Subject: "s", Text: "t"})
			var me *mailer.Error
			if !errors.As(err, &me) {
				t.Fatalf("err = %v (%T), want *mailer.Error", err, err)
			}
			if me.Op != c.op || me.Code != c.code || errors.Is(err, mailer.ErrPermanent) != c.permanent || me.Temporary() == c.permanent {
				t.Fatalf("err = %v: op %s code %d permanent %v, want %s %d %v",
					err, me.Op, me.Code, errors.Is(err, mailer.ErrPermanent), c.op, c.code, c.permanent)
			}
			if me.Enhanced == "" {
				t.Errorf("enhanced status code lost: %+v", me)
			}
		})
	}
}

// TestTimeoutIsTransient: a relay that accepts the connection and never
// answers costs Config.Timeout, not forever.
func TestTimeoutIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	m := newMailer(t, mailer.Config{Addr: ln.Addr().String(), Timeout: 300 * time.Millisecond})
	began := time.Now()
	err = m.Send(context.Background(), mailer.Message{MessageID: "a@b", To: "zizou@example.org", Subject: "s", Text: "t"})
	if err == nil || errors.Is(err, mailer.ErrPermanent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a transient deadline error", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Send took %v with a 300ms timeout", d)
	}

	// The caller's context bounds it too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	m = newMailer(t, mailer.Config{Addr: ln.Addr().String(), Timeout: time.Minute})
	if err := m.Send(ctx, mailer.Message{MessageID: "a@b", To: "zizou@example.org", Subject: "s", Text: "t"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

// TestSTARTTLSAndAuth: a production-like relay with STARTTLS and AUTH PLAIN.
func TestSTARTTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, mode := range []string{mailer.TLSStartTLS, mailer.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			be := &fakeBackend{user: "shop", pass: "s3cret"}
			addr := startFake(t, be, tlsCfg, mode == mailer.TLSImplicit)
			cfg := mailer.Config{
				Addr: addr, TLS: mode, TLSConfig: &tls.Config{RootCAs: pool},
				Username: "shop", Password: "s3cret", LocalName: "shop.example.org",
			}
			msg := mailer.Message{MessageID: "tls@shopstream", To: "zizou@example.org", Subject: "s", Text: "t"}
			if err := newMailer(t, cfg).Send(context.Background(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := be.received()
			if len(got) != 1 || !got[0].tls || got[0].user != "shop" || got[0].helo != "shop.example.org" {
				t.Fatalf("relay saw %+v, want one message over TLS from user shop", got)
			}

			cfg.Password = "wrong"
			err := newMailer(t, cfg).Send(context.Background(), msg)
			var me *mailer.Error
			if !errors.As(err, &me) || me.Op != "auth" || me.Code != 535 || !errors.Is(err, mailer.ErrPermanent) {
				t.Fatalf("wrong password: err = %v, want permanent auth 535", err)
			}

			// An untrusted certificate is refused.
			cfg.Password, cfg.TLSConfig = "s3cret", nil
			if err := newMailer(t, cfg).Send(context.Background(), msg); err == nil {
				t.Fatal("self-signed certificate accepted without its root")
			}
			if n := len(be.received()); n != 1 {
				t.Fatalf("%d messages received, want 1", n)
			}
		})
	}
	// STARTTLS required but not offered: credentials are not sent in clear.
	be := &fakeBackend{user: "shop", pass: "s3cret"}
	addr := startFake(t, be, nil, false)
	err := newMailer(t, mailer.Config{Addr: addr, TLS: mailer.TLSStartTLS, Username: "shop", Password: "s3cret"}).
		Send(context.Background(), mailer.Message{MessageID: "a@b", To: "zizou@example.org", Subject: "s", Text: "t"})
	if err == nil || be.authAttempts() != 0 {
		t.Fatalf("no STARTTLS: err = %v, auth attempts %d", err, be.authAttempts())
	}
}

// fakeBackend is a go-smtp backend with scripted refusals and credentials.
type fakeBackend struct {
	mailErr, rcptErr, dataErr error
	user, pass                string

	mu    sync.Mutex
	got   []received
	auths int
}

type received struct {
	tls        bool
	user, helo string
	data       []byte
}

func (b *fakeBackend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

func (b *fakeBackend) authAttempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.auths
}

func (b *fakeBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &fakeSession{b: b, c: c}, nil
}

type fakeSession struct {
	b    *fakeBackend
	c    *smtp.Conn
	user string
}

func (s *fakeSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *fakeSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.b.mu.Lock()
		s.b.auths++
		s.b.mu.Unlock()
		if user != s.b.user || pass != s.b.pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *fakeSession) Mail(string, *smtp.MailOptions) error {
	if s.b.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	return s.b.mailErr
}
func (s *fakeSession) Rcpt(string, *smtp.RcptOptions) error { return s.b.rcptErr }
func (s *fakeSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.b.dataErr != nil {
		return s.b.dataErr
	}
	_, isTLS := s.c.TLSConnectionState()
	s.b.mu.Lock()
	s.b.got = append(s.b.got, received{tls: isTLS, user: s.user, helo: s.c.Hostname(), data: data})
	s.b.mu.Unlock()
	return nil
}
func (s *fakeSession) Reset()        {}
func (s *fakeSession) Logout() error { return nil }

func startFake(t *testing.T, be *fakeBackend, tlsCfg *tls.Config, implicit bool) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.ErrorLog = nopLog{}
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); ln.Close() })
	return ln.Addr().String()
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// renderPDF renders page 1 with pdftoppm and checks it has ink, and that
// pdftotext finds each of want; it skips without poppler-utils.
func renderPDF(t *testing.T, pdf []byte, want ...string) {
	t.Helper()
	img := pdftest.Page1(t, pdf)
	if !pdftest.HasInk(img) {
		t.Fatalf("rendered page is blank (%.3f%% ink)", 100*pdftest.InkRatio(img))
	}
	text := pdftest.Text(t, pdf)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("attached PDF text lacks %q:\n%s", w, text)
		}
	}
}

// A prepared message reaches the relay only on Commit: an aborted one is
// discarded (the connection closes inside DATA), and a committed one is
// stored once, however long it waited between the two.
func TestPreparedMessageIsSentOnlyOnCommit(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	msg := mailer.Message{MessageID: "<paced-1@shopstream>", To: "zizou@example.org", Subject: "Facture", Text: "Merci\n"}

	aborted, err := m.Prepare(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	aborted.Abort()
	aborted.Abort() // twice is harmless
	time.Sleep(100 * time.Millisecond)
	if files, err := s.Messages(); err != nil || len(files) != 0 {
		t.Fatalf("an aborted message was stored: %v %v", files, err)
	}

	p, err := m.Prepare(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the pacing wait
	if files, _ := s.Messages(); len(files) != 0 {
		t.Fatalf("stored before Commit: %v", files)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := readEML(t, onlyMessage(t, s))
	if id := got.Header.Get("Message-Id"); id != "<paced-1@shopstream>" {
		t.Fatalf("Message-ID %q", id)
	}
}

// A context that ends while the message waits aborts it: Commit fails
// (transient) and nothing is stored.
func TestPreparedMessageAbortsWithItsContext(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := m.Prepare(ctx, mailer.Message{MessageID: "<paced-2@shopstream>", To: "zizou@example.org", Subject: "x", Text: "y\n"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Commit(); err == nil || errors.Is(err, mailer.ErrPermanent) {
		t.Fatalf("Commit after the context ended: %v, want a transient error", err)
	}
	time.Sleep(100 * time.Millisecond)
	if files, _ := s.Messages(); len(files) != 0 {
		t.Fatalf("stored after the context ended: %v", files)
	}
}

// The timeout bounds Prepare and Commit each, not the caller's wait
// between them (a pacer's slot can be seconds away at a low quota).
func TestTimeoutDoesNotCountTheWaitBeforeCommit(t *testing.T) {
	s := startSMTPD(t, smtpd.Config{})
	m := newMailer(t, mailer.Config{Addr: s.Addr(), Timeout: 300 * time.Millisecond})
	p, err := m.Prepare(context.Background(), mailer.Message{MessageID: "<paced-3@shopstream>", To: "zizou@example.org", Subject: "x", Text: "y\n"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // twice the timeout
	if err := p.Commit(); err != nil {
		t.Fatalf("Commit after a wait longer than the timeout: %v", err)
	}
	onlyMessage(t, s)
}
