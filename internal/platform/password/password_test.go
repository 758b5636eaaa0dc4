package password

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var ctx = context.Background()

func TestHashChecksOnlyItsPassword(t *testing.T) {
	fast := Params{Memory: 64, Time: 1, Threads: 1}
	h, err := Hash(ctx, "correct horse battery", fast)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct") || !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if ok, err := Check(ctx, h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("the right password: %v %v", ok, err)
	}
	if ok, err := Check(ctx, h, "correct horse batterY"); ok || err != nil {
		t.Fatalf("a wrong password: %v %v", ok, err)
	}
	h2, _ := Hash(ctx, "correct horse battery", fast)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	// A hash made with other parameters still checks (they travel with it).
	old, _ := Hash(ctx, "correct horse battery", Params{Memory: 32, Time: 2, Threads: 1})
	if ok, _ := Check(ctx, old, "correct horse battery"); !ok {
		t.Fatal("a hash of older parameters no longer checks")
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=64,t=0,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaA"} {
		if _, err := Check(ctx, bad, "x"); err != ErrMalformed {
			t.Errorf("Check(%q): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for pw, bad := range map[string]bool{"short": true, strings.Repeat("é", 12): false, strings.Repeat("a", 129): true, "twelve chars": false} {
		if got := Validate(pw) != ""; got != bad {
			t.Errorf("Validate(%q) refused=%v, want %v", pw, got, bad)
		}
	}
}

func TestPlainNeverPrints(t *testing.T) {
	p := Plain("correct horse battery")
	cmd := struct {
		Email    string
		Password Plain
	}{"a@b.c", p}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("cmd", "password", p, "cmd", cmd)
	js, _ := json.Marshal(cmd)
	for _, s := range []string{fmt.Sprint(cmd), fmt.Sprintf("%+v %#v %s", cmd, cmd, p), b.String(), string(js)} {
		if strings.Contains(s, "horse") {
			t.Errorf("the password leaks: %s", s)
		}
	}
	if string(p) != "correct horse battery" {
		t.Fatal("the value itself changed")
	}
}

// A burst of log-ins queues for the hash slots instead of computing 50
// hashes of 19 MiB at once.
func TestHashesAtOnceAreBounded(t *testing.T) {
	p := Params{Memory: 8 * 1024, Time: 1, Threads: 1}
	h, _ := Hash(ctx, "correct horse battery", p)
	var most atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				if n := inFlight.Load(); n > most.Load() {
					most.Store(n)
				}
			}
		}
	}()
	for range 50 {
		wg.Go(func() { _, _ = Check(ctx, h, "wrong password, any") })
	}
	wg.Wait()
	close(stop)
	if m, limit := most.Load(), int32(slots.Cap()); m > limit || m == 0 {
		t.Fatalf("%d hashes computed at once, want 1 to %d", m, limit)
	}
	t.Logf("50 concurrent checks: at most %d at once (limit %d)", most.Load(), slots.Cap())
}

// A hash that finds every slot taken waits at most QueueWait, then is
// refused with ErrBusy; one whose context ends first returns at once with
// the context's error. Neither computes anything.
func TestAHashWaitsBoundedlyForASlot(t *testing.T) {
	for range slots.Cap() {
		if !slots.Enter(ctx, 0) {
			t.Fatal("a slot was taken before the test")
		}
	}
	defer func() {
		for range slots.Cap() {
			slots.Leave()
		}
	}()
	fast := Params{Memory: 64, Time: 1, Threads: 1}
	began := time.Now()
	if _, err := Hash(ctx, "correct horse battery", fast); err != ErrBusy {
		t.Fatalf("Hash with every slot taken: %v, want ErrBusy", err)
	}
	if waited := time.Since(began); waited < QueueWait {
		t.Fatalf("refused after %v, want after QueueWait (%v)", waited, QueueWait)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := Check(short, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", "x"); err != context.DeadlineExceeded {
		t.Fatalf("Check past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if n := inFlight.Load(); n != 0 {
		t.Fatalf("%d hashes computed while every slot was taken", n)
	}
}
