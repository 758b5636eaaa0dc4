package app

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/edge/auth"
	"shopstream/internal/edge/console"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/outbox"
	"shopstream/processors/email"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

// console builds the pipeline console of the instance's admin listener
// from what the instance connected: Kafka always; the outbox backlog with
// PostgreSQL, decoded dead letters with the registry, order look-ups and
// replays with MongoDB, sold-out notices with the gateway.
func (w *wiring) console() (*console.Console, error) {
	sec, err := w.cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	rate := w.cfg.EmailRate
	if rate == 0 {
		rate = DefaultEmailRate
	}
	cfg := console.Config{
		Admin: w.kadm(), Kafka: slices.Concat([]kgo.Opt{kgo.SeedBrokers(w.cfg.Brokers...)}, sec),
		Groups: w.known, EmailGroup: email.Group, EmailRate: rate, IsStaff: auth.StaffKeyCheck(w.cfg.Auth.StaffKeys), Logger: w.log,
	}
	for _, t := range schemas.Topics() {
		cfg.Topics = append(cfg.Topics, t.Name)
	}
	if w.dbs != nil {
		cfg.Outbox = func(ctx context.Context) (int64, error) {
			var n int64
			err := w.dbs.each(func(_ string, pool *pgxpool.Pool) error {
				k, err := outbox.Pending(ctx, pool)
				n += k
				return err
			})
			return n, err
		}
	}
	if w.serde != nil {
		cfg.Decode = func(r *kgo.Record) (string, error) {
			topic := r.Topic // a dead letter's value is its original record's
			if d, ok := eventlog.ReadDeadLetter(r); ok {
				topic = d.Topic
			}
			ev, _, err := w.serde.Decode(context.Background(), topic, r.Value)
			if err != nil {
				return "", err
			}
			b, err := json.Marshal(ev)
			return string(b), err
		}
	}
	if w.db != nil && w.serde != nil {
		cfg.Orders = orderviews.NewReader(w.db)
		store := docstore.New(w.db)
		cfg.Replay = func() replay.Config {
			return replay.Config{Kafka: cfg.Kafka, Serde: w.serde, Store: store, Logger: w.log}
		}
	}
	if w.hub != nil {
		cfg.SoldOut = w.hub.WatchAll
	}
	return console.New(cfg)
}
