// Package password hashes and checks passwords with argon2id
// (golang.org/x/crypto/argon2), encoded in the PHC string format
// ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>") so that the
// parameters travel with each hash and can be raised later without
// invalidating the hashes already stored.
//
// Guarantees: a hash never holds the password; each has its own random
// 16-byte salt; Check compares in constant time and reads the parameters
// from the hash it is given, so hashes made with older parameters keep
// working.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"shopstream/internal/platform/admission"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// Default is OWASP's recommended minimum for argon2id (19 MiB, 2 passes,
// 1 thread): about 30 ms on one core of a small server.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Bounds of an acceptable password, in characters.
const (
	MinLength = 12
	MaxLength = 128
)

// ErrMalformed is a stored hash Check cannot read.
var ErrMalformed = errors.New("password: malformed hash")

// ErrBusy refuses a hash that found no free slot within QueueWait: the
// process already computes as many as it may and enough wait behind them.
// The caller should answer at once that the service is busy (the gateway
// answers 429 with Retry-After) rather than keep its client waiting.
var ErrBusy = errors.New("password: too many hashes waiting")

// QueueWait is how long a hash waits for a slot, at most (and never past
// its context). A burst of sign-ups or log-ins on two cores computes about
// 30 hashes a second, so a second's queue is what it can clear in about a
// second; a longer one would only grow until its clients time out.
const QueueWait = time.Second

// Validate says why pw is not acceptable as a new password ("" if it is).
func Validate(pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinLength:
		return fmt.Sprintf("must be at least %d characters", MinLength)
	case n > MaxLength:
		return fmt.Sprintf("must be at most %d characters", MaxLength)
	}
	return ""
}

// slots bound the hashes computed at once, whatever calls them (sign-ups,
// log-ins): each takes Params.Memory, 19 MiB by default, so a burst of
// log-ins must queue rather than take the process's memory; the queue is
// bounded in time by QueueWait.
var slots = admission.New(max(2, runtime.GOMAXPROCS(0)))

// Procs is how many hashes may run at once in a process. A process that
// serves latency-sensitive requests beside the hashes should raise
// GOMAXPROCS by Procs (see cmd/shop): a hash holds a Go P for its whole
// ~30 ms, and with GOMAXPROCS at the cores' count the goroutines queued
// on that P wait up to a scheduler time slice (10 ms) for it; with the
// extra Ps they run at once, and the operating system, which sees the
// hashes' threads at a lower priority, gives the cores to them first.
func Procs() int { return slots.Cap() }

// inFlight counts the hashes being computed (for the test of slots).
var inFlight atomic.Int32

func argon(ctx context.Context, pw, salt []byte, p Params, n uint32) ([]byte, error) {
	if !slots.Enter(ctx, QueueWait) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, ErrBusy
	}
	inFlight.Add(1)
	defer func() { inFlight.Add(-1); slots.Leave() }()
	key := make(chan []byte, 1)
	go func() {
		// The thread is never unlocked, so it ends with this goroutine and
		// its lowered priority never reaches other goroutines.
		runtime.LockOSThread()
		lowerThreadPriority()
		key <- argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, n)
	}()
	return <-key, nil
}

// Hash returns the PHC-encoded argon2id hash of pw under p. At most
// Procs hashes (Hash and Check together) are computed at once in a
// process; more wait their turn, at most QueueWait and never past ctx
// (then ErrBusy, or ctx's error). Each runs on an operating-system thread
// of its own, at a lower scheduling priority where the system has one
// (Linux: nice HashNice), so that under load the cores go first to the
// requests that wait for them.
func Hash(ctx context.Context, pw string, p Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key, err := argon(ctx, []byte(pw), salt, p, 32)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Check reports whether pw is the password of hash. It waits for a slot
// as Hash does.
func Check(ctx context.Context, hash, pw string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrMalformed
	}
	var version int
	var p Params
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformed
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time == 0 || p.Threads == 0 {
		return false, ErrMalformed
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, ErrMalformed
	}
	got, err := argon(ctx, []byte(pw), salt, p, uint32(len(want)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Plain is a password in clear, on its way to Hash or Check. It prints,
// logs and marshals as "[redacted]", so that a command carrying one can
// be logged or traced whole without leaking it.
type Plain string

const redacted = "[redacted]"

func (Plain) String() string               { return redacted }
func (Plain) GoString() string             { return redacted }
func (Plain) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Plain) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Plain) MarshalText() ([]byte, error) { return []byte(redacted), nil }
