package sse

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A stream outlives the server's WriteTimeout and ReadTimeout, events
// arriving as they are written.
func TestStreamOutlivesTheServersTimeouts(t *testing.T) {
	const every, events = 100 * time.Millisecond, 15 // 1.5 s against timeouts of 500 ms
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w)
		if err != nil {
			t.Error(err)
			return
		}
		for i := range events {
			time.Sleep(every)
			if err := s.Event("tick", fmt.Appendf(nil, `{"n": %d}`, i)); err != nil {
				t.Errorf("event %d: %v", i, err)
				return
			}
		}
	}))
	srv.Config.WriteTimeout, srv.Config.ReadTimeout = 500*time.Millisecond, 500*time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: tick") {
			got++
		}
	}
	if got != events {
		t.Fatalf("%d of %d events arrived over %v with a 500 ms WriteTimeout (err %v)", got, events, every*events, sc.Err())
	}
}

// A writer that cannot flush cannot stream, and nothing is written to it.
func TestStartRefusesAWriterThatCannotFlush(t *testing.T) {
	w := &noFlush{h: http.Header{}}
	if _, err := Start(w); err != ErrNoFlush {
		t.Fatalf("Start: %v, want ErrNoFlush", err)
	}
	if w.wrote || len(w.h) != 0 {
		t.Fatalf("Start wrote to a writer it refused: headers %v", w.h)
	}
}

type noFlush struct {
	h     http.Header
	wrote bool
}

func (n *noFlush) Header() http.Header         { return n.h }
func (n *noFlush) Write(b []byte) (int, error) { n.wrote = true; return len(b), nil }
func (n *noFlush) WriteHeader(int)             { n.wrote = true }
