package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"shopstream/internal/devinfra/embedded/smtpd"
)

func start(t *testing.T, cfg smtpd.Config) *smtpd.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "mail")
	}
	s, err := smtpd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func rawMessage(id, body string) string {
	return "From: shop@example.org\r\nTo: zizou@example.org\r\nSubject: hello\r\n" +
		"Message-ID: <" + id + ">\r\n\r\n" + body
}

// send uses go-smtp's client as is: no SIZE is declared for the message.
func send(addr, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("shop@example.org", []string{"zizou@example.org", "audit@example.org"}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

var nameRE = regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z-(.+)\.eml$`)

func TestStoresEachMessageAsEML(t *testing.T) {
	s := start(t, smtpd.Config{})
	if host, _, _ := net.SplitHostPort(s.Addr()); host != "127.0.0.1" {
		t.Fatalf("default address %s is not loopback", s.Addr())
	}
	body := "Bonjour Zinédine,\r\n.a line starting with a dot\r\n..two dots\r\nend\r\n"
	if err := send(s.Addr(), rawMessage("invoice-42@shopstream", body)); err != nil {
		t.Fatalf("send: %v", err)
	}
	// A resend (same Message-ID) and a message with an unusual one.
	if err := send(s.Addr(), rawMessage("invoice-42@shopstream", body)); err != nil {
		t.Fatalf("resend: %v", err)
	}
	if err := send(s.Addr(), rawMessage("../../etc/passwd x@y", "evil\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}

	files, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("Messages() = %v, want 3 files", files)
	}
	wantIDs := []string{"invoice-42@shopstream", "invoice-42@shopstream", ".._.._etc_passwd_x@y"}
	for i, f := range files {
		if filepath.Dir(f) != s.Dir() {
			t.Errorf("%s not in %s", f, s.Dir())
		}
		m := nameRE.FindStringSubmatch(filepath.Base(f))
		if m == nil || m[1] != strings.Trim(wantIDs[i], ".") {
			t.Errorf("file %d named %q, want <timestamp>-%s.eml", i, filepath.Base(f), wantIDs[i])
		}
	}

	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("stored message does not parse: %v", err)
	}
	if got := msg.Header.Get("Message-Id"); got != "<invoice-42@shopstream>" {
		t.Errorf("Message-ID = %q", got)
	}
	if got := msg.Header.Get("Return-Path"); got != "<shop@example.org>" {
		t.Errorf("Return-Path = %q", got)
	}
	if got := msg.Header.Get("X-Envelope-To"); got != "zizou@example.org, audit@example.org" {
		t.Errorf("X-Envelope-To = %q", got)
	}
	got, _ := io.ReadAll(msg.Body)
	if string(got) != body {
		t.Errorf("body = %q, want %q (dots unstuffed, CRLF kept)", got, body)
	}

	// Only the .eml files: no temporary file left behind.
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 3 {
		t.Errorf("%d entries in %s, want 3", len(entries), s.Dir())
	}
}

func TestConcurrentMessagesGetDistinctFiles(t *testing.T) {
	s := start(t, smtpd.Config{})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- send(s.Addr(), rawMessage("same@id", fmt.Sprintf("message %d\r\n", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Fatalf("%d files for %d messages", len(files), n)
	}
	seen := map[string]bool{}
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(msg.Body)
		seen[string(b)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct bodies stored, want %d", len(seen), n)
	}
}

func TestRefusesMessagesOver10MiB(t *testing.T) {
	s := start(t, smtpd.Config{})
	line := strings.Repeat("x", 998) + "\r\n"
	big := func(size int) string {
		return rawMessage("big@id", strings.Repeat(line, size/len(line)))
	}

	// Undeclared size: refused at the end of DATA.
	err := send(s.Addr(), big(smtpd.MaxMessageBytes+64<<10))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("over 10 MiB: err = %v, want 552", err)
	}
	// Declared size: refused at MAIL FROM.
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	err = c.Mail("shop@example.org", &smtp.MailOptions{Size: smtpd.MaxMessageBytes + 1})
	c.Close()
	if !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("declared over 10 MiB: err = %v, want 552", err)
	}
	if files, _ := s.Messages(); len(files) != 0 {
		t.Fatalf("refused message stored: %v", files)
	}

	// Just under the limit is fine.
	if err := send(s.Addr(), big(smtpd.MaxMessageBytes-64<<10)); err != nil {
		t.Fatalf("under 10 MiB: %v", err)
	}
	if files, _ := s.Messages(); len(files) != 1 {
		t.Fatalf("Messages() = %v, want 1", files)
	}
}

func TestAcceptsAnyCredentials(t *testing.T) {
	s := start(t, smtpd.Config{})
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "shop", "whatever")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.SendMail("shop@example.org", []string{"a@example.org"}, strings.NewReader(rawMessage("a@b", "x\r\n"))); err != nil {
		t.Fatal(err)
	}
	if files, _ := s.Messages(); len(files) != 1 {
		t.Fatalf("Messages() = %v, want 1", files)
	}
}

func TestLoopbackOnlyByDefault(t *testing.T) {
	dir := t.TempDir()
	if s, err := smtpd.Start(context.Background(), smtpd.Config{Addr: "0.0.0.0:0", Dir: dir}); err == nil {
		s.Stop(context.Background())
		t.Fatal("listening on all interfaces without AllowRemote")
	}
	s, err := smtpd.Start(context.Background(), smtpd.Config{Addr: "0.0.0.0:0", Dir: dir, AllowRemote: true})
	if err != nil {
		t.Fatalf("AllowRemote: %v", err)
	}
	s.Stop(context.Background())
}

// TestRestartKeepsMessagesAndDropsUnfinished: a restart on the same
// directory keeps the stored messages and removes what a crash left half
// written.
func TestRestartKeepsMessagesAndDropsUnfinished(t *testing.T) {
	dir := t.TempDir()
	s := start(t, smtpd.Config{Dir: dir})
	if err := send(s.Addr(), rawMessage("kept@id", "x\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, ".incoming-123.tmp")
	if err := os.WriteFile(partial, []byte("From: half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, smtpd.Config{Dir: dir})
	files, err := s2.Messages()
	if err != nil || len(files) != 1 || !strings.HasSuffix(files[0], "-kept@id.eml") {
		t.Fatalf("after restart: %v %v", files, err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("unfinished message left: %v", err)
	}
}

func TestStartValidates(t *testing.T) {
	if _, err := smtpd.Start(context.Background(), smtpd.Config{}); err == nil {
		t.Fatal("started without Dir")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := smtpd.Start(ctx, smtpd.Config{Dir: t.TempDir()}); err == nil {
		t.Fatal("started with a cancelled context")
	}
}

func TestStop(t *testing.T) {
	s, err := smtpd.Start(context.Background(), smtpd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// An idle client that never quits: Stop gives up waiting when ctx ends
	// and closes it.
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// Its greeting says the server has taken the connection as a session
	// (a dial alone can return before the server accepts it).
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if greeting, err := bufio.NewReader(idle).ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "220") {
		t.Fatalf("greeting %q: %v", greeting, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with an idle client = %v, want deadline exceeded", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("Stop took %v", d)
	}
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("idle connection not closed by Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Stop")
	}
	if err := s.Stop(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Stop = %v, want the first result", err)
	}

	// Without clients, Stop returns nil.
	s2, err := smtpd.Start(context.Background(), smtpd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// TestStopRightAfterStart: Stop must not hang when it runs before the serving
// goroutine has registered its listener.
func TestStopRightAfterStart(t *testing.T) {
	dir := t.TempDir()
	for range 50 {
		s, err := smtpd.Start(context.Background(), smtpd.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- s.Stop(context.Background()) }()
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("Stop: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Stop right after Start hangs")
		}
	}
}
