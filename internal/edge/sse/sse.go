// Package sse writes server-sent event streams (text/event-stream) that
// outlive the server's timeouts.
//
// Guarantees: a stream is exempt from the http.Server's ReadTimeout and
// WriteTimeout, which would otherwise cut it when they expire, whatever it
// is doing; instead each write has a deadline of WriteTimeout of its own,
// so a client that stopped reading is dropped and a live one never is.
// Every event is flushed as it is written.
package sse

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// KeepAlive is how often a caller should send Stream.KeepAlive on an idle
// stream, so that proxies keep it open.
const KeepAlive = 15 * time.Second

// WriteTimeout bounds each write of a stream.
const WriteTimeout = 10 * time.Second

// ErrNoFlush is Start's answer for a ResponseWriter that cannot flush: it
// cannot stream, and nothing was written to it.
var ErrNoFlush = errors.New("sse: the response cannot be flushed")

// Stream is an event stream being written.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	fl http.Flusher
}

// Start answers with an event stream: its headers, 200 and a flush, after
// lifting the server's read and write deadlines from the connection. On
// an error nothing was written, and the caller answers as it sees fit.
func Start(w http.ResponseWriter) (*Stream, error) {
	fl, ok := w.(http.Flusher)
	if !ok {
		return nil, ErrNoFlush
	}
	s := &Stream{w: w, rc: http.NewResponseController(w), fl: fl}
	_ = s.rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if err := s.deadline(); err != nil {
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	return s, nil
}

// Event writes one event named name with data (one line: JSON has no
// newlines) and flushes it.
func (s *Stream) Event(name string, data []byte) error {
	return s.write("event: %s\ndata: %s\n\n", name, data)
}

// KeepAlive writes a comment line, which clients ignore.
func (s *Stream) KeepAlive() error { return s.write(": keep-alive\n\n") }

func (s *Stream) write(format string, args ...any) error {
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, format, args...); err != nil {
		return err
	}
	s.fl.Flush()
	return nil
}

// deadline gives the next write WriteTimeout. A ResponseWriter that hides
// its connection (a wrapper without Unwrap) cannot have one: the stream
// would then die with the server's WriteTimeout, so that is an error.
func (s *Stream) deadline() error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil {
		return fmt.Errorf("sse: write deadline: %w", err)
	}
	return nil
}
