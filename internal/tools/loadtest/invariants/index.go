package invariants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// Index is what the checks need from the event log, built in one pass over
// every shop topic (Add). Each event counts once: a record whose event id
// was already indexed (a republish of the at-least-once outbox relay) is
// skipped.
type Index struct {
	Events int // distinct events indexed
	// Poison counts records that could not be decoded; PoisonExamples
	// names the first few (topic/partition/offset: error).
	Poison         int
	PoisonExamples []string

	Customers map[string]bool // CustomerSignedUp, by customer id
	Products  map[string]bool // ProductRegistered, by product id
	Reviews   map[string]bool // ReviewAdded, by review id
	CartAdds  map[[2]string]int
	Placed    map[string]schemas.OrderPlaced // OrderPlaced, by order id
	Confirmed map[string]bool                // OrderConfirmed, by order id
	Cancelled map[string]string              // OrderCancelled reason, by order id
	// Paid lists the PaymentSucceeded events of each order.
	Paid map[string][]schemas.PaymentSucceeded
	// EmailsSent counts the EmailSent events of each order.
	EmailsSent map[string]int
	// Stock holds each product's inventory events (shop.inventory.stock.v1)
	// in log order: one product is one key, so one partition.
	Stock map[string][]StockEvent

	seen map[string]bool // event ids
}

// StockEvent is one event of shop.inventory.stock.v1 and where it is.
type StockEvent struct {
	Event schemas.Event
	At    string // topic/partition/offset
}

// maxPoisonExamples is how many undecodable records an Index names.
const maxPoisonExamples = 3

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		Customers: map[string]bool{}, Products: map[string]bool{}, Reviews: map[string]bool{},
		CartAdds: map[[2]string]int{}, Placed: map[string]schemas.OrderPlaced{}, Confirmed: map[string]bool{},
		Cancelled: map[string]string{}, Paid: map[string][]schemas.PaymentSucceeded{}, EmailsSent: map[string]int{},
		Stock: map[string][]StockEvent{}, seen: map[string]bool{},
	}
}

// Add indexes one decoded event. Events of one partition must be added in
// offset order.
func (ix *Index) Add(env eventlog.Envelope) {
	if id := env.Meta.EventID; id != "" {
		if ix.seen[id] {
			return
		}
		ix.seen[id] = true
	}
	ix.Events++
	at := fmt.Sprintf("%s/%d/%d", env.Topic, env.Partition, env.Offset)
	switch e := env.Event.(type) {
	case schemas.CustomerSignedUp:
		ix.Customers[e.CustomerID] = true
	case schemas.ProductRegistered:
		ix.Products[e.ProductID] = true
	case schemas.ReviewAdded:
		ix.Reviews[e.ReviewID] = true
	case schemas.ItemAddedToCart:
		ix.CartAdds[[2]string{e.CustomerID, e.ProductID}]++
	case schemas.OrderPlaced:
		ix.Placed[e.OrderID] = e
	case schemas.OrderConfirmed:
		ix.Confirmed[e.OrderID] = true
	case schemas.OrderCancelled:
		ix.Cancelled[e.OrderID] = e.Reason
	case schemas.PaymentSucceeded:
		ix.Paid[e.OrderID] = append(ix.Paid[e.OrderID], e)
	case schemas.EmailSent:
		ix.EmailsSent[e.OrderID]++
	case schemas.StockReserved:
		ix.Stock[e.ProductID] = append(ix.Stock[e.ProductID], StockEvent{e, at})
	case schemas.StockReceived:
		ix.Stock[e.ProductID] = append(ix.Stock[e.ProductID], StockEvent{e, at})
	case schemas.StockReservationRejected:
		ix.Stock[e.ProductID] = append(ix.Stock[e.ProductID], StockEvent{e, at})
	case schemas.StockReleased:
		ix.Stock[e.ProductID] = append(ix.Stock[e.ProductID], StockEvent{e, at})
	}
}

// addPoison counts a record that could not be decoded.
func (ix *Index) addPoison(r *kgo.Record, err error) {
	ix.Poison++
	if len(ix.PoisonExamples) < maxPoisonExamples {
		ix.PoisonExamples = append(ix.PoisonExamples, fmt.Sprintf("%s/%d/%d: %v", r.Topic, r.Partition, r.Offset, err))
	}
}

// Timeouts of reading the log.
const (
	offsetsTimeout = 30 * time.Second // to list the start and end offsets
	stallTimeout   = 60 * time.Second // with no record while some partition is short of its end
)

// readLog reads every shop topic from its start to its end offsets as they
// are when it starts, with one consumer, and indexes each record. A record
// that is poison is counted; any other decode error (the registry not
// answering) ends the read with that error, as does a consumer that makes
// no progress for stallTimeout.
func readLog(ctx context.Context, brokers []string, extra []kgo.Opt, serde *eventlog.Serde, log *slog.Logger) (*Index, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no Kafka brokers given")
	}
	topics := make([]string, 0, len(schemas.Topics()))
	for _, t := range schemas.Topics() {
		topics = append(topics, t.Name)
	}
	kopts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithLogger(kslog.New(log.With("component", "kafka-client")))}, extra...)
	admCl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	octx, cancel := context.WithTimeout(ctx, offsetsTimeout)
	defer cancel()
	starts, err := adm.ListStartOffsets(octx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of the shop topics: %w", err)
	}
	ends, err := adm.ListEndOffsets(octx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of the shop topics: %w", err)
	}

	// next is the next offset to read of every partition short of its end.
	next := map[string]map[int32]int64{}
	parts := map[string]map[int32]kgo.Offset{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			start = s.Offset
		}
		if start >= o.Offset {
			return
		}
		if next[o.Topic] == nil {
			next[o.Topic], parts[o.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		next[o.Topic][o.Partition] = start
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(start)
		total += o.Offset - start
	})
	ix := NewIndex()
	if total == 0 {
		return ix, nil
	}
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumePartitions(parts), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()

	short := func() int {
		n := 0
		for t, ps := range next {
			for p, at := range ps {
				if end, _ := ends.Lookup(t, p); at < end.Offset {
					n++
				}
			}
		}
		return n
	}
	var read int64
	var lastErr error
	progress := time.Now()
	for short() > 0 {
		if time.Since(progress) > stallTimeout {
			return nil, fmt.Errorf("read %d of %d records of the shop topics, then nothing for %s (last error: %v)", read, total, stallTimeout, lastErr)
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %d of %d records of the shop topics: %w", read, total, err)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				lastErr = fmt.Errorf("%s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		var decodeErr error
		fs.EachRecord(func(r *kgo.Record) {
			end, _ := ends.Lookup(r.Topic, r.Partition)
			if decodeErr != nil || r.Offset >= end.Offset || r.Offset < next[r.Topic][r.Partition] {
				return
			}
			next[r.Topic][r.Partition] = r.Offset + 1
			read++
			progress = time.Now()
			env, err := serde.Read(ctx, r)
			switch {
			case errors.Is(err, eventlog.ErrPoison):
				ix.addPoison(r, err)
			case err != nil:
				decodeErr = fmt.Errorf("decode %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
			default:
				ix.Add(env)
			}
		})
		if decodeErr != nil {
			return nil, decodeErr
		}
	}
	log.Debug("event log indexed", "records", read, "events", ix.Events, "poison", ix.Poison)
	return ix, nil
}
