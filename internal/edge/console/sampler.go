package console

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"shopstream/internal/platform/lag"
)

// historyLen is how many samples a group's lag chart shows (5 minutes at
// the default interval).
const historyLen = 150

// idleAfter is how long the sampler goes on after the last page or stream
// asked for a sample: a console nobody watches costs the shop nothing.
const idleAfter = 20 * time.Second

// TopicStat is one topic as the last sample saw it.
type TopicStat struct {
	Name       string
	Partitions int
	End        int64   // the sum of the partitions' end offsets
	Rate       float64 // records/s since the previous sample
}

// GroupStat is one consumer group as the last sample saw it.
type GroupStat struct {
	lag.Group
	Topics  []string
	Rate    float64 // records/s committed since the previous sample
	History []int64 // its total lag, oldest first, one a sample
}

// Member is one member of the email group and its share of the quota.
type Member struct {
	ID         string
	Partitions int
	Share      float64 // its part of the group-wide quota, sends/s
	Rate       float64 // records/s committed on its partitions

	parts map[string][]int32
}

// describeMembers lists group's members with the partitions each was
// assigned (nil when the group cannot be described).
func describeMembers(ctx context.Context, adm *kadm.Client, group string) []Member {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil
	}
	var out []Member
	for _, m := range described[group].Members {
		mb := Member{ID: m.ClientID + "@" + m.ClientHost, parts: map[string][]int32{}}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				mb.parts[t.Topic] = t.Partitions
				mb.Partitions += len(t.Partitions)
			}
		}
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// EmailStat is the email group against its quota.
type EmailStat struct {
	Group   string
	Quota   float64 // sends/s for the whole group
	Rate    float64 // sends/s now (records/s the group commits)
	Backlog int64   // records waiting in Kafka (the group's lag)
	Members []Member
	Rates   []float64 // sends/s, oldest first, one a sample
}

// Sample is what the console shows, measured at one instant.
type Sample struct {
	At          time.Time
	Topics      []TopicStat
	DeadLetters []TopicStat // dead-letter topics holding records
	Groups      []GroupStat
	Outbox      int64
	OutboxKnown bool
	Email       EmailStat
	Err         string // what the last sample could not measure
}

// sampler measures the pipeline every interval while someone watches, and
// keeps each group's lag history.
type sampler struct {
	cfg      Config
	interval time.Duration
	topics   []string // the event-log topics, then their dead-letter topics

	mu       sync.Mutex
	last     Sample
	ends     map[string]map[int32]int64 // previous end offsets, by topic
	commits  map[string]map[string]map[int32]int64
	history  map[string][]int64
	rates    []float64
	wanted   time.Time // last time a page or stream asked
	running  bool
	subs     map[chan Sample]struct{}
	stopping context.Context
}

func newSampler(ctx context.Context, cfg Config) *sampler {
	return &sampler{cfg: cfg, interval: cfg.Interval, topics: slices.Concat(cfg.Topics, cfg.deadLetterTopics()), ends: map[string]map[int32]int64{}, commits: map[string]map[string]map[int32]int64{},
		history: map[string][]int64{}, subs: map[chan Sample]struct{}{}, stopping: ctx}
}

// current returns the last sample, measuring one first when none is fresh,
// and keeps the sampler running for idleAfter.
func (s *sampler) current(ctx context.Context) Sample {
	s.mu.Lock()
	s.wanted = time.Now()
	fresh := time.Since(s.last.At) < 2*s.interval
	last := s.last
	s.ensureRunning()
	s.mu.Unlock()
	if fresh {
		return last
	}
	return s.measure(ctx)
}

// subscribe receives every sample until ctx ends.
func (s *sampler) subscribe(ctx context.Context) <-chan Sample {
	ch := make(chan Sample, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.wanted = time.Now()
	s.ensureRunning()
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	return ch
}

// ensureRunning starts the sampling loop; s.mu is held.
func (s *sampler) ensureRunning() {
	if s.running {
		return
	}
	s.running = true
	go s.loop()
}

func (s *sampler) loop() {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		idle := len(s.subs) == 0 && time.Since(s.wanted) > idleAfter
		if idle {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.stopping, s.interval*3)
		smp := s.measure(ctx)
		cancel()
		s.mu.Lock()
		for ch := range s.subs {
			select {
			case ch <- smp:
			default: // a slow page misses a sample rather than holding the others
			}
		}
		s.mu.Unlock()
	}
}

// measure takes a sample: end offsets, the groups' lag and commits, the
// outbox backlog, the email group's members.
func (s *sampler) measure(ctx context.Context) Sample {
	now := time.Now()
	smp := Sample{At: now}
	var errs []string
	topics := s.topics
	ends, err := s.cfg.Admin.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		errs = append(errs, "end offsets: "+err.Error())
	}
	groups, err := lag.Measure(ctx, s.cfg.Admin, s.cfg.Groups)
	if err != nil {
		errs = append(errs, "lag: "+err.Error())
	}
	var members []Member
	if s.cfg.EmailGroup != "" {
		members = describeMembers(ctx, s.cfg.Admin, s.cfg.EmailGroup)
	}
	if s.cfg.Outbox != nil {
		if n, err := s.cfg.Outbox(ctx); err == nil {
			smp.Outbox, smp.OutboxKnown = n, true
		} else {
			errs = append(errs, "outbox: "+err.Error())
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	dt := now.Sub(s.last.At).Seconds()
	if s.last.At.IsZero() || dt <= 0 {
		dt = 0
	}
	for _, name := range topics {
		st := TopicStat{Name: name}
		prev := s.ends[name]
		cur := map[int32]int64{}
		var before int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic != name {
				return
			}
			st.Partitions++
			st.End += o.Offset
			cur[o.Partition] = o.Offset
			before += prev[o.Partition]
		})
		if dt > 0 && prev != nil {
			st.Rate = float64(st.End-before) / dt
		}
		if len(cur) > 0 {
			s.ends[name] = cur
		}
		if strings.HasSuffix(name, deadLetterSuffix) {
			if st.End > 0 {
				smp.DeadLetters = append(smp.DeadLetters, st)
			}
			continue
		}
		smp.Topics = append(smp.Topics, st)
	}
	for _, g := range groups {
		gs := GroupStat{Group: g, Topics: s.cfg.Groups[g.Group]}
		prev := s.commits[g.Group]
		cur := map[string]map[int32]int64{}
		var moved int64
		for _, p := range g.Partitions {
			if cur[p.Topic] == nil {
				cur[p.Topic] = map[int32]int64{}
			}
			cur[p.Topic][p.Partition] = p.Committed
			if was, ok := prev[p.Topic][p.Partition]; ok && was >= 0 && p.Committed > was {
				moved += p.Committed - was
			}
		}
		if dt > 0 && prev != nil {
			gs.Rate = float64(moved) / dt
		}
		if g.Group == s.cfg.EmailGroup && dt > 0 && prev != nil {
			for i, m := range members {
				var n int64
				for t, ps := range m.parts {
					for _, p := range ps {
						if was, ok := prev[t][p]; ok && was >= 0 && cur[t][p] > was {
							n += cur[t][p] - was
						}
					}
				}
				members[i].Rate = float64(n) / dt
			}
		}
		s.commits[g.Group] = cur
		h := append(s.history[g.Group], g.Lag)
		if len(h) > historyLen {
			h = h[len(h)-historyLen:]
		}
		s.history[g.Group] = h
		gs.History = slices.Clone(h)
		smp.Groups = append(smp.Groups, gs)
		if g.Group == s.cfg.EmailGroup {
			smp.Email = EmailStat{Group: g.Group, Quota: s.cfg.EmailRate, Rate: gs.Rate, Backlog: g.Lag}
			s.rates = append(s.rates, gs.Rate)
			if len(s.rates) > historyLen {
				s.rates = s.rates[len(s.rates)-historyLen:]
			}
		}
	}
	if smp.Email.Group != "" {
		total := 0
		for _, m := range members {
			total += m.Partitions
		}
		for i := range members {
			if total > 0 {
				members[i].Share = s.cfg.EmailRate * float64(members[i].Partitions) / float64(total)
			}
		}
		smp.Email.Members = members
		smp.Email.Rates = slices.Clone(s.rates)
	}
	smp.Err = strings.Join(errs, "; ")
	s.last = smp
	return smp
}
