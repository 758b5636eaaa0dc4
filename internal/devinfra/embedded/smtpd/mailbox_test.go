package smtpd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/processors/email/mailer"
)

// pdfLike is a few KiB starting like a PDF, with every byte value in it, so
// its base64 spans many lines.
func pdfLike() []byte {
	b := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for i := range 5000 {
		b = append(b, byte(i*7))
	}
	return append(b, "\n%%EOF\n"...)
}

func TestReadMailboxParsesWhatTheServerStored(t *testing.T) {
	s := start(t, smtpd.Config{})
	began := time.Now().UTC().Truncate(time.Microsecond)

	// A plain message, one with a PDF attached as the shop's mailer writes
	// it, and a resend of the first.
	if err := send(s.Addr(), rawMessage("plain@shopstream", "Bonjour\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	m, err := mailer.New(mailer.Config{Addr: s.Addr(), From: "shopstream <shop@example.org>", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pdf := pdfLike()
	err = m.Send(context.Background(), mailer.Message{
		MessageID: "invoice-42@shopstream",
		To:        "Zinédine Zidane <zizou@example.org>",
		Subject:   "Votre facture",
		Text:      "Ci-joint votre facture.\n",
		Attachments: []mailer.Attachment{
			{Name: "facture-42.pdf", ContentType: "application/pdf", Data: pdf},
			{Name: "notes.txt", ContentType: "text/plain", Data: []byte("deux\r\nlignes")},
		},
	})
	if err != nil {
		t.Fatalf("mailer: %v", err)
	}
	if err := send(s.Addr(), rawMessage("plain@shopstream", "Bonjour\r\n")); err != nil {
		t.Fatalf("resend: %v", err)
	}
	ended := time.Now().UTC()

	mails, err := smtpd.ReadMailbox(s.Dir())
	if err != nil {
		t.Fatalf("ReadMailbox: %v", err)
	}
	files, _ := s.Messages()
	if len(mails) != 3 || len(files) != 3 {
		t.Fatalf("ReadMailbox gave %d mails, Messages %d files: want 3", len(mails), len(files))
	}
	wantIDs := []string{"<plain@shopstream>", "<invoice-42@shopstream>", "<plain@shopstream>"}
	for i, got := range mails {
		if got.File != files[i] {
			t.Errorf("mail %d: File %s, want %s", i, got.File, files[i])
		}
		if got.MessageID != wantIDs[i] {
			t.Errorf("mail %d: MessageID %q, want %q", i, got.MessageID, wantIDs[i])
		}
		if got.Received.Location() != time.UTC || got.Received.Before(began) || got.Received.After(ended) {
			t.Errorf("mail %d: Received %v, want UTC between %v and %v", i, got.Received, began, ended)
		}
		if i > 0 && !got.Received.After(mails[i-1].Received) {
			t.Errorf("mail %d received %v, not after mail %d's %v", i, got.Received, i-1, mails[i-1].Received)
		}
		if got.Header.Get("X-Envelope-To") == "" {
			t.Errorf("mail %d: no X-Envelope-To in Header", i)
		}
	}

	plain := mails[0]
	if plain.From != "shop@example.org" || plain.To != "zizou@example.org" || plain.Subject != "hello" {
		t.Errorf("plain: From %q, To %q, Subject %q", plain.From, plain.To, plain.Subject)
	}
	if len(plain.Attachments) != 0 {
		t.Errorf("plain message has attachments %+v", plain.Attachments)
	}

	inv := mails[1]
	if !strings.Contains(inv.From, "shop@example.org") || !strings.Contains(inv.To, "zizou@example.org") {
		t.Errorf("invoice: From %q, To %q", inv.From, inv.To)
	}
	if len(inv.Attachments) != 2 {
		t.Fatalf("invoice: %d attachments, want 2 (the text body is not one)", len(inv.Attachments))
	}
	a := inv.Attachments[0]
	if a.ContentType != "application/pdf" || a.Filename != "facture-42.pdf" {
		t.Errorf("attachment 1: %q %q, want application/pdf facture-42.pdf", a.ContentType, a.Filename)
	}
	if !bytes.Equal(a.Data, pdf) {
		t.Errorf("attachment 1: %d bytes (%.20q), want the %d sent", len(a.Data), a.Data, len(pdf))
	}
	if b := inv.Attachments[1]; b.ContentType != "text/plain" || b.Filename != "notes.txt" || string(b.Data) != "deux\r\nlignes" {
		t.Errorf("attachment 2: %q %q %q", b.ContentType, b.Filename, b.Data)
	}
}

func TestReadMailboxEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	// Neither a hidden file nor one with another extension is a message.
	for _, n := range []string{".20240102T030405.000000Z-x.eml", "20240102T030405.000000Z-x.eml.tmp", "README"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("not a message"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if mails, err := smtpd.ReadMailbox(dir); err != nil || len(mails) != 0 {
		t.Fatalf("ReadMailbox(no messages) = %v, %v; want none, no error", mails, err)
	}
	if _, err := smtpd.ReadMailbox(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("ReadMailbox(missing dir): no error")
	}
}

func TestReadMailboxSortsByReceiveTime(t *testing.T) {
	dir := t.TempDir()
	names := []string{"20240102T030405.000002Z-b.eml", "20231231T235959.999999Z-c.eml", "20240102T030405.000001Z-a.eml"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(rawMessage(n, "x\r\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mails, err := smtpd.ReadMailbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{
		time.Date(2023, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 2000, time.UTC),
	}
	if len(mails) != len(want) {
		t.Fatalf("%d mails, want %d", len(mails), len(want))
	}
	for i, m := range mails {
		if !m.Received.Equal(want[i]) || m.MessageID != "<"+filepath.Base(m.File)+">" {
			t.Errorf("mail %d: %s received %v, Message-ID %q; want %v", i, m.File, m.Received, m.MessageID, want[i])
		}
	}
}

// An error names the file it is about.
func TestReadMailboxErrorsNameTheFile(t *testing.T) {
	good := rawMessage("ok@id", "x\r\n")
	badBase64 := "From: a@b\r\nMessage-ID: <bad@id>\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
		"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"JVBERi0x!!!\r\n--XX--\r\n"
	for _, c := range []struct{ name, content string }{
		{"not-a-time-x.eml", good},
		{"noname.eml", good},
		{"20240102T030405.000000Z-badbase64.eml", badBase64},
		{"20240102T030405.000000Z-badheader.eml", "no header here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "20240101T000000.000000Z-ok.eml"), []byte(good), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.name), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			mails, err := smtpd.ReadMailbox(dir)
			if err == nil || !strings.Contains(err.Error(), c.name) || mails != nil {
				t.Fatalf("ReadMailbox = %d mails, %v; want an error naming %s", len(mails), err, c.name)
			}
			t.Log(err)
		})
	}
}
