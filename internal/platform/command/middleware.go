package command

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shopstream/internal/platform/admission"
)

// ErrOverloaded refuses a command because the instance already runs as
// many as it may (the gateway answers 429 with Retry-After).
var ErrOverloaded = errors.New("too many commands in flight")

// Outcome names how a command ended, for logs and metrics: ok, replayed,
// invalid, not_found, conflict, overloaded, or error.
func Outcome(res Result, err error) string {
	switch {
	case err == nil && res.Replayed:
		return "replayed"
	case err == nil:
		return "ok"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict), errors.Is(err, ErrVersion):
		return "conflict"
	case errors.Is(err, ErrOverloaded):
		return "overloaded"
	}
	return "error"
}

// Logging logs every command at debug level, and failures that are not the
// caller's fault at error level.
func Logging(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
			start := time.Now()
			res, err := next(ctx, meta, cmd)
			outcome := Outcome(res, err)
			attrs := []any{"command", cmd.CommandName(), "outcome", outcome, "took", time.Since(start), "correlation_id", meta.CorrelationID}
			if outcome == "error" {
				log.ErrorContext(ctx, "command failed", append(attrs, "err", err)...)
			} else {
				log.DebugContext(ctx, "command", attrs...)
			}
			return res, err
		}
	}
}

// Metrics records each command's duration, by command and outcome, in the
// histogram shop_command_duration_seconds registered on reg.
func Metrics(reg prometheus.Registerer) Middleware {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shop_command_duration_seconds",
		Help:    "Time to handle a command, by command and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"command", "outcome"})
	reg.MustRegister(hist)
	return func(next Handler) Handler {
		return func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
			start := time.Now()
			res, err := next(ctx, meta, cmd)
			hist.WithLabelValues(cmd.CommandName(), Outcome(res, err)).Observe(time.Since(start).Seconds())
			return res, err
		}
	}
}

// Validation refuses a command whose own fields are wrong before any I/O.
func Validation() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
			if v, ok := cmd.(Validator); ok {
				if err := v.Validate(); err != nil {
					return Result{}, err
				}
			}
			return next(ctx, meta, cmd)
		}
	}
}

// Shed bounds the commands in flight through it to max: one more is
// refused at once with ErrOverloaded instead of queueing, so that a spike
// gets fast 429s while the commands already admitted finish in time.
func Shed(max int) Middleware {
	gate := admission.New(max)
	return func(next Handler) Handler {
		return func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
			if !gate.Enter(ctx, 0) {
				return Result{}, ErrOverloaded
			}
			defer gate.Leave()
			return next(ctx, meta, cmd)
		}
	}
}

// Retry runs a command again when it lost an optimistic-concurrency race
// (ErrVersion), at most attempts times in all, with a short jittered pause
// so that racing writers spread out. Other errors are returned at once.
func Retry(attempts int) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, meta Meta, cmd Command) (Result, error) {
			for attempt := 1; ; attempt++ {
				res, err := next(ctx, meta, cmd)
				if !errors.Is(err, ErrVersion) || attempt >= attempts {
					return res, err
				}
				pause := time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond)))
				select {
				case <-ctx.Done():
					return res, err
				case <-time.After(pause):
				}
			}
		}
	}
}
