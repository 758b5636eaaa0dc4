package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// Grant is one Kafka ACL a component needs: ALLOW Operation on the
// Resource ("topic" or "group") Name, for the component's principal.
type Grant struct {
	Resource  string // "topic" or "group"
	Name      string
	Operation string // "READ" or "WRITE" (each implies DESCRIBE)
}

func (g Grant) String() string {
	return fmt.Sprintf("ALLOW %s on %s %s", g.Operation, g.Resource, g.Name)
}

// Grants are the ACLs a principal running components needs, and no more:
// each consumer group READ on itself and on its topics, and WRITE on those
// topics' dead-letter topics (a record it cannot process goes there); the
// outbox relay WRITE on every topic of the log; the gateway READ on the
// stock topic (its sold-out stream, without a group). In the table's
// order, each once.
func Grants(components []string) []Grant {
	var out []Grant
	add := func(g Grant) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	for _, c := range table() {
		if !slices.Contains(components, c.name) {
			continue
		}
		for _, group := range slices.Sorted(maps.Keys(c.groups)) {
			add(Grant{"group", group, "READ"})
			for _, t := range c.groups[group] {
				add(Grant{"topic", t, "READ"})
				add(Grant{"topic", eventlog.DeadLetterTopic(t), "WRITE"})
			}
		}
		switch c.name {
		case OutboxRelay:
			for _, t := range schemas.Topics() {
				add(Grant{"topic", t.Name, "WRITE"})
			}
		case Gateway:
			add(Grant{"topic", schemas.TopicStock, "READ"})
		}
	}
	return out
}

// ErrMissingGrant is a component started under a principal that lacks an
// ACL it needs.
var ErrMissingGrant = errors.New("kafka: missing ACL")

// checkGrants asks the broker, as this process's principal, whether it
// holds every grant: the topics' authorized operations (metadata, KIP-430)
// and each group's offsets (DESCRIBE, which READ implies). It fails at
// start naming the first grant missing, rather than letting a consumer
// hang or a produce fail later. A broker without an authorizer answers
// that it does not know, which passes; a topic not created yet is left to
// EnsureTopics.
func checkGrants(ctx context.Context, cl *kgo.Client, principal string, grants []Grant) error {
	adm := kadm.NewClient(cl)
	var topics []string
	for _, g := range grants {
		if g.Resource == "topic" && !slices.Contains(topics, g.Name) {
			topics = append(topics, g.Name)
		}
	}
	ops := map[string]int32{}
	if len(topics) > 0 {
		req := kmsg.NewPtrMetadataRequest()
		req.IncludeTopicAuthorizedOperations = true
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("kafka: check ACLs: %w", err)
		}
		for _, t := range resp.Topics {
			if t.Topic == nil {
				continue
			}
			name := t.Topic
			switch err := kerr.ErrorForCode(t.ErrorCode); {
			case errors.Is(err, kerr.TopicAuthorizationFailed):
				ops[*name] = 0 // not even DESCRIBE
			case err == nil:
				ops[*name] = t.AuthorizedOperations
			}
		}
	}
	for _, g := range grants {
		var missing bool
		switch g.Resource {
		case "topic":
			have, known := ops[g.Name]
			op := map[string]kmsg.ACLOperation{"READ": kmsg.ACLOperationRead, "WRITE": kmsg.ACLOperationWrite}[g.Operation]
			missing = known && have != math.MinInt32 && have&(1<<int32(op)) == 0
		case "group":
			_, err := adm.FetchOffsets(ctx, g.Name)
			missing = errors.Is(err, kerr.GroupAuthorizationFailed)
		}
		if missing {
			return fmt.Errorf("%w: principal %s lacks %s (the grants of these components: shop acls --components %s)",
				ErrMissingGrant, principal, g, strings.Join(componentsNeeding(g), ","))
		}
	}
	return nil
}

// componentsNeeding are the components whose grants include g.
func componentsNeeding(g Grant) []string {
	var out []string
	for _, c := range Components() {
		if slices.Contains(Grants([]string{c}), g) {
			out = append(out, c)
		}
	}
	return out
}

// ACLs are the kadm builders that create grants for principal
// ("User:<name>"), one per grant, literal names, any host.
func ACLs(principal string, grants []Grant) []*kadm.ACLBuilder {
	var out []*kadm.ACLBuilder
	for _, g := range grants {
		b := kadm.NewACLs().Allow(principal).AllowHosts("*").ResourcePatternType(kadm.ACLPatternLiteral)
		if g.Resource == "group" {
			b = b.Groups(g.Name)
		} else {
			b = b.Topics(g.Name)
		}
		out = append(out, b.Operations(map[string]kadm.ACLOperation{"READ": kadm.OpRead, "WRITE": kadm.OpWrite}[g.Operation]))
	}
	return out
}
