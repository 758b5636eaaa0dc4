package smtpd

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// receivedLayout is the time layout that starts a stored message's file
// name, "<receivedLayout>-<message-id>.eml": the time the server received
// it, in UTC, at microsecond precision. store writes it, ReadMailbox reads
// it back.
const receivedLayout = "20060102T150405.000000Z"

// Mail is one message of a mailbox directory, as ReadMailbox parsed it.
type Mail struct {
	// File is the message's path: the directory given to ReadMailbox joined
	// with the file name.
	File string
	// Received is when the server stored the message, from its file name
	// (UTC, microsecond precision; unique per server).
	Received time.Time
	// MessageID, From, To and Subject are the header fields as written,
	// e.g. MessageID "<invoice-42@shopstream>"; empty when absent.
	MessageID, From, To, Subject string
	// Header is the whole header, including the trace fields the server
	// prepends (Return-Path, X-Envelope-To, Received).
	Header mail.Header
	// Attachments are the attachments of a multipart body, in order. A
	// message that is not multipart has none.
	Attachments []Attachment
}

// Attachment is one attachment of a Mail, decoded.
type Attachment struct {
	// ContentType is the part's media type without its parameters,
	// lower-case, e.g. "application/pdf"; "text/plain" when absent.
	ContentType string
	// Filename is the file name the part's Content-Disposition (or else
	// its Content-Type's name parameter) gives; empty when neither does.
	Filename string
	// Data is the content, with the transfer encoding (base64 or
	// quoted-printable) undone.
	Data []byte
}

// ReadMailbox reads and parses every message stored in dir, the directory a
// Server writes to (Config.Dir): every regular file named "*.eml" that does
// not start with ".". The messages come sorted by receive time, oldest first
// (the order the server stored them in). dir not existing is an error; an
// empty dir gives no messages and no error.
//
// A message's receive time is the one its file name starts with, as the
// server names its files. The attachments are the parts of a top-level
// multipart body (multipart/mixed, as processors/email/mailer writes it)
// that have a Content-Disposition of "attachment" or a file name, with
// their base64 or quoted-printable transfer encoding undone; nested
// multipart parts are not descended into.
//
// A file that cannot be read, a name that does not start with a receive
// time, a message that does not parse (header, multipart structure, or an
// attachment's encoding) is an error that names the file; no messages are
// returned with it.
func ReadMailbox(dir string) ([]Mail, error) {
	files, err := listMessages(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Mail, 0, len(files))
	for _, f := range files {
		m, err := readMail(f)
		if err != nil {
			return nil, fmt.Errorf("smtpd: %s: %w", f, err)
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b Mail) int {
		if c := a.Received.Compare(b.Received); c != 0 {
			return c
		}
		return strings.Compare(a.File, b.File)
	})
	return out, nil
}

// listMessages returns the paths of the stored messages in dir, sorted by
// name (so by receive time for the server's own files).
func listMessages(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("smtpd: %w", err)
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasSuffix(n, Ext) && !strings.HasPrefix(n, ".") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

func readMail(path string) (Mail, error) {
	ts, _, ok := strings.Cut(filepath.Base(path), "-")
	if !ok {
		return Mail{}, fmt.Errorf("file name does not start with a receive time %q", receivedLayout)
	}
	received, err := time.Parse(receivedLayout, ts)
	if err != nil {
		return Mail{}, fmt.Errorf("file name does not start with a receive time: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Mail{}, err
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{
		File:      path,
		Received:  received,
		MessageID: msg.Header.Get("Message-Id"),
		From:      msg.Header.Get("From"),
		To:        msg.Header.Get("To"),
		Subject:   msg.Header.Get("Subject"),
		Header:    msg.Header,
	}
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		return m, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return Mail{}, fmt.Errorf("Content-Type %q: %w", ct, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return m, nil
	}
	if params["boundary"] == "" {
		return Mail{}, fmt.Errorf("Content-Type %q: no boundary", ct)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 1; ; i++ {
		part, err := mr.NextPart() // undoes quoted-printable itself
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Mail{}, fmt.Errorf("part %d: %w", i, err)
		}
		a, ok, err := attachment(part)
		if err != nil {
			return Mail{}, fmt.Errorf("part %d: %w", i, err)
		}
		if ok {
			m.Attachments = append(m.Attachments, a)
		}
	}
	return m, nil
}

// attachment decodes part when it is an attachment.
func attachment(part *multipart.Part) (Attachment, bool, error) {
	var a Attachment
	isAttachment := false
	if cd := part.Header.Get("Content-Disposition"); cd != "" {
		disp, params, err := mime.ParseMediaType(cd)
		if err != nil {
			return a, false, fmt.Errorf("Content-Disposition %q: %w", cd, err)
		}
		isAttachment = disp == "attachment"
		a.Filename = params["filename"]
	}
	a.ContentType = "text/plain"
	if ct := part.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return a, false, fmt.Errorf("Content-Type %q: %w", ct, err)
		}
		a.ContentType = mt
		if a.Filename == "" {
			a.Filename = params["name"]
		}
	}
	if !isAttachment && a.Filename == "" {
		return a, false, nil
	}
	body, err := io.ReadAll(part)
	if err != nil {
		return a, false, err
	}
	switch cte := strings.ToLower(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		a.Data, err = base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
		if err != nil {
			return a, false, fmt.Errorf("attachment %q: base64: %w", a.Filename, err)
		}
	case "", "7bit", "8bit", "binary": // quoted-printable: already undone, and the header removed
		a.Data = body
	default:
		return a, false, fmt.Errorf("attachment %q: unknown Content-Transfer-Encoding %q", a.Filename, cte)
	}
	return a, true, nil
}
