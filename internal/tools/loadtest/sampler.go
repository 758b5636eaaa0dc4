package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/lag"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/schemas"
)

// sampler watches the pipeline while the load runs and drains: the lag of
// every consumer group with members (GET /lag), the stock of the hottest products as
// readers see it (GET /products/{id}), and the invoice emails sent (the
// EmailSent events on the emails topic, by their time).
type sampler struct {
	c     *client
	start time.Time
	hot   []product

	mu     sync.Mutex
	lag    []report.LagSample
	stock  map[string][]report.StockPoint
	emails map[int]int      // second since start -> EmailSent events
	last   map[string]int64 // the latest lag sample; nil when GET /lag failed
	lastAt time.Time        // when it was taken

	emailsCl *kgo.Client
	lagCl    *kgo.Client // the brokers the groups' lag is measured on (nil: GET /lag of the admin listener)
}

// newSampler starts consuming EmailSent events from the current end of the
// emails topic; brokers may be nil (emails are then not followed).
func newSampler(ctx context.Context, c *client, start time.Time, hot []product, brokers []string, extra []kgo.Opt) (*sampler, error) {
	s := &sampler{c: c, start: start, hot: hot, stock: map[string][]report.StockPoint{}, emails: map[int]int{}}
	if len(brokers) == 0 {
		return s, nil
	}
	kopts := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)
	adm, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, schemas.TopicEmails)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		adm.Close()
		return nil, fmt.Errorf("end offsets of %s: %w", schemas.TopicEmails, err)
	}
	from := map[string]map[int32]kgo.Offset{schemas.TopicEmails: {}}
	ends.Each(func(o kadm.ListedOffset) { from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset) })
	if s.emailsCl, err = kgo.NewClient(append(slices.Clone(kopts), kgo.ConsumePartitions(from))...); err != nil {
		adm.Close()
		return nil, err
	}
	s.lagCl = adm                         // the lag is measured with the same client
	context.AfterFunc(ctx, s.lagCl.Close) // the run's end
	return s, nil
}

// run samples once a second until ctx ends.
func (s *sampler) run(ctx context.Context) {
	var wg sync.WaitGroup
	if s.emailsCl != nil {
		wg.Go(func() { s.followEmails(ctx) })
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (s *sampler) followEmails(ctx context.Context) {
	defer s.emailsCl.Close()
	sent := (schemas.EmailSent{}).EventType()
	for {
		fs := s.emailsCl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			m, err := eventlog.ParseMetadata(r)
			if err != nil || m.Type != sent {
				return
			}
			at := m.OccurredAt
			if at.IsZero() {
				at = r.Timestamp
			}
			s.mu.Lock()
			s.emails[int(at.Sub(s.start)/time.Second)]++
			s.mu.Unlock()
		})
	}
}

func (s *sampler) sample(ctx context.Context) {
	now := time.Since(s.start).Seconds()
	groups, err := s.groups(ctx)
	if err != nil {
		s.mu.Lock()
		s.last, s.lastAt = nil, time.Time{} // unknown, not the old figures
		s.mu.Unlock()
	} else {
		// Only groups with members: a broker keeps the offsets of groups
		// nobody runs any more (an older projection version, a one-off
		// redrive), whose lag never drains.
		m := map[string]int64{}
		for _, g := range groups {
			if g.Members > 0 {
				m[g.Group] = g.Lag
			}
		}
		s.mu.Lock()
		s.lag = append(s.lag, report.LagSample{T: now, Groups: m})
		s.last, s.lastAt = m, time.Now()
		s.mu.Unlock()
	}
	for _, p := range s.hot {
		var v struct {
			Stock int64 `json:"stock"`
		}
		if s.get(ctx, s.c.base+"/products/"+p.id, &v) == nil {
			s.mu.Lock()
			s.stock[p.id] = append(s.stock[p.id], report.StockPoint{T: now, Stock: v.Stock})
			s.mu.Unlock()
		}
	}
}

// groups measures every consumer group's lag on the brokers, or asks the
// shop's admin listener (GET /lag) when the brokers are unknown.
func (s *sampler) groups(ctx context.Context) ([]lag.Group, error) {
	if s.lagCl != nil {
		return lag.Measure(ctx, kadm.NewClient(s.lagCl), nil)
	}
	if s.c.admin == "" {
		return nil, errors.New("lag unknown: neither the brokers nor the shop's admin listener are known")
	}
	var v struct {
		Groups []lag.Group `json:"groups"`
	}
	err := s.get(ctx, s.c.admin+"/lag", &v)
	return v.Groups, err
}

// get reads a JSON answer at url outside the recorded load.
func (s *sampler) get(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// lastLag is the latest lag of each group and when it was measured (nil
// before the first sample and after a failed one).
func (s *sampler) lastLag() (map[string]int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.lastAt
}

// emailsIn is the number of emails sent during second sec.
func (s *sampler) emailsIn(sec int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emails[sec]
}

// fill writes the samples into rep, up to second end. Emails per second
// come from received (the SMTP server's clock) when it is not nil, else
// from the EmailSent events followed during the run.
func (s *sampler) fill(rep *report.Report, end int, received []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Lag = s.lag
	perSecond := s.emails
	if received != nil {
		perSecond = map[int]int{}
		for _, at := range received {
			perSecond[int(at.Sub(s.start)/time.Second)]++
		}
	}
	for sec := range end + 1 {
		rep.Emails = append(rep.Emails, report.EmailSample{T: sec, Sent: perSecond[sec]})
		rep.Totals.EmailsSent += int64(perSecond[sec])
	}
	for _, p := range s.hot {
		rep.Stock = append(rep.Stock, report.StockSeries{ProductID: p.id, Title: p.title, Points: s.stock[p.id]})
	}
}

// lagMinSince is each group's smallest lag over the samples taken at t
// seconds since the start or later.
func (s *sampler) lagMinSince(t float64) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for _, l := range s.lag {
		if l.T < t {
			continue
		}
		for g, v := range l.Groups {
			if old, ok := out[g]; !ok || v < old {
				out[g] = v
			}
		}
	}
	return out
}
