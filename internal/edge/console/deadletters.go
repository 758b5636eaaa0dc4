package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/deadletter"
)

// Letter is a dead letter as the page shows it.
type Letter struct {
	deadletter.Letter
	Headers []string
	Payload string
}

// DeadLetters are the dead letters waiting in every topic.
type DeadLetters struct {
	Pending  []Letter
	Redriven int      // dead letters a redrive already went past
	Topics   []string // dead-letter topics with pending letters
}

func (c *Console) deadLetters(r *http.Request) (any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	letters, err := deadletter.List(ctx, c.cfg.Admin, c.cfg.Kafka, c.cfg.deadLetterTopics())
	if err != nil {
		return nil, err
	}
	var out DeadLetters
	for _, l := range letters {
		if l.Redriven {
			out.Redriven++ // counted, not shown: no need to decode it
			continue
		}
		v := Letter{Letter: l}
		for _, h := range l.Record.Headers {
			v.Headers = append(v.Headers, h.Key+"="+string(h.Value))
		}
		if c.cfg.Decode != nil {
			if js, err := c.cfg.Decode(l.Record); err == nil {
				v.Payload = js
			} else {
				v.Payload = "(does not decode: " + err.Error() + ")"
			}
		}
		out.Pending = append(out.Pending, v)
		if !slices.Contains(out.Topics, l.Record.Topic) {
			out.Topics = append(out.Topics, l.Record.Topic)
		}
	}
	return out, nil
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	topics, err := deadletter.Topics(r.PostFormValue("topic"), true)
	if err != nil {
		http.Redirect(w, r, "/console/dlq?msg="+urlQuery(err.Error()), http.StatusSeeOther)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(c.cfg.Kafka...)
	if err != nil {
		http.Redirect(w, r, "/console/dlq?msg="+urlQuery(err.Error()), http.StatusSeeOther)
		return
	}
	defer cl.Close()
	res, err := deadletter.Redrive(ctx, cl, c.cfg.Admin, c.cfg.Kafka, topics[0])
	msg := fmt.Sprintf("sent %d records back from %s (%d dead letters read)", res.Sent, topics[0], res.Read)
	if err != nil {
		msg = "redrive " + topics[0] + ": " + err.Error()
	}
	c.cfg.Logger.Info("console: redrive", "topic", topics[0], "sent", res.Sent, "err", err)
	http.Redirect(w, r, "/console/dlq?msg="+urlQuery(msg), http.StatusSeeOther)
}
