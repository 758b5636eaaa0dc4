// Package asyncapi generates the AsyncAPI 3.0 document of the shop's event
// log from the schema catalogue: one channel per topic of schemas.Topics(),
// one message per event type with its current Avro schema as the payload
// (older versions listed under x-shop-versions), the record key and headers,
// and an operation for each component that writes a topic or reads it.
//
// Nothing in the document is kept by hand: what the catalogue does not say
// (who writes and reads what, the headers, the subject naming) is an input,
// supplied by the packages that own it (internal/app passes the components'
// flows, eventlog's header table and subject function). The package imports
// only schemas and the standard library.
package asyncapi

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"shopstream/schemas"
)

// Version is the AsyncAPI specification version the document follows.
const Version = "3.0.0"

// KafkaBindingVersion is the version of the Kafka bindings used (0.5.0 has
// the message binding's schemaIdLocation and schemaIdPayloadEncoding).
const KafkaBindingVersion = "0.5.0"

// AvroSchemaFormat is the multi-format schema format of every payload.
const AvroSchemaFormat = "application/vnd.apache.avro+json;version=1.9.0"

// Compatibility is the schema registry compatibility level of every subject
// of the contract.
const Compatibility = schemas.Policy

// Flow is what one component does with the event log: the topics a
// consumer group of it reads and the event types it writes (through the
// transactional outbox). A component with several groups has one Flow per
// group.
type Flow struct {
	Component string
	// Group is the consumer group reading Reads; empty for a reader that
	// uses no group (assigned partitions, no committed offsets).
	Group string
	// Reads are topic names.
	Reads []string
	// Writes are event types (Avro full names).
	Writes []string
	// Description says what the component does with them.
	Description string
}

// Header is one record header of every event.
type Header struct {
	Name string
	// Meaning says what the value is.
	Meaning string
	// Always is true when every record carries the header.
	Always bool
	// Rely is true when a consumer may base decisions on the value (not
	// only log or trace with it).
	Rely bool
}

// Server is where the event log runs.
type Server struct {
	Name        string // e.g. "dev"
	Host        string // host:port of a broker
	RegistryURL string // schema registry (Confluent API)
	Description string
}

// Input is everything the document is generated from.
type Input struct {
	Catalog *schemas.Catalog
	Topics  []schemas.TopicSpec
	Flows   []Flow
	Headers []Header
	Servers []Server
	// DeadLetter names a topic's dead-letter topic.
	DeadLetter func(topic string) string
	// Title and APIVersion of info; empty for the defaults.
	Title, APIVersion string
}

// Document builds the AsyncAPI document (JSON, indented). It fails when a
// flow names a topic or event type the catalogue does not have, or when an
// event type's topic is not among the topics.
func Document(in Input) ([]byte, error) {
	doc, err := build(in)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type object = map[string]any

func ref(pointer ...string) object {
	for i, p := range pointer {
		pointer[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
	}
	return object{"$ref": "#/" + strings.Join(pointer, "/")}
}

func build(in Input) (object, error) {
	if in.Catalog == nil {
		return nil, fmt.Errorf("asyncapi: Input needs a Catalog")
	}
	types := in.Catalog.Types()
	byTopic := map[string][]*schemas.Type{}
	partitions := map[string]int32{}
	for _, t := range in.Topics {
		partitions[t.Name] = t.Partitions
	}
	for _, t := range types {
		if _, ok := partitions[t.Topic]; !ok {
			return nil, fmt.Errorf("asyncapi: event type %s is on topic %s, which is not in the topic list", t.Name, t.Topic)
		}
		byTopic[t.Topic] = append(byTopic[t.Topic], t)
	}

	headers := headersSchema(in.Headers)
	messages := object{}
	for _, t := range types {
		m, err := message(in, t, headers)
		if err != nil {
			return nil, err
		}
		messages[t.Name] = m
	}

	channels := object{}
	for _, spec := range in.Topics {
		msgs := object{}
		var names []string
		for _, t := range byTopic[spec.Name] {
			msgs[t.Name] = ref("components", "messages", t.Name)
			names = append(names, t.Name)
		}
		desc := fmt.Sprintf("Event-log topic of %d partition(s), keyed by aggregate id, infinite retention. Event types: %s.",
			spec.Partitions, strings.Join(names, ", "))
		if in.DeadLetter != nil {
			desc += fmt.Sprintf(" Records a consumer group could not process go to %s, with error headers.", in.DeadLetter(spec.Name))
		}
		channels[spec.Name] = object{
			"address":     spec.Name,
			"title":       spec.Name,
			"description": desc,
			"messages":    msgs,
			"bindings": object{"kafka": object{
				"topic":      spec.Name,
				"partitions": spec.Partitions,
				"topicConfiguration": object{
					"retention.ms":    -1,
					"retention.bytes": -1,
					"cleanup.policy":  []string{"delete"},
				},
				"bindingVersion": KafkaBindingVersion,
			}},
		}
	}

	operations, err := operationsOf(in, byTopic)
	if err != nil {
		return nil, err
	}

	servers := object{}
	for _, s := range in.Servers {
		servers[s.Name] = object{
			"host":        s.Host,
			"protocol":    "kafka",
			"description": s.Description + " Schema registry (Confluent API): " + s.RegistryURL + ".",
			"bindings": object{"kafka": object{
				"schemaRegistryUrl":    s.RegistryURL,
				"schemaRegistryVendor": "confluent",
				"bindingVersion":       KafkaBindingVersion,
			}},
		}
	}

	title := cmp.Or(in.Title, "shopstream event log")
	return object{
		"asyncapi": Version,
		"id":       "urn:shopstream:event-log",
		"info": object{
			"title":       title,
			"version":     cmp.Or(in.APIVersion, "1.0.0"),
			"description": infoDescription(in),
		},
		"defaultContentType": "application/avro",
		"servers":            servers,
		"channels":           channels,
		"operations":         operations,
		"components":         object{"messages": messages},
	}, nil
}

func infoDescription(in Input) string {
	example := schemas.Subject("<topic>", "<record full name>")
	return strings.Join([]string{
		"The shop's event log: one Kafka topic per aggregate type, generated from the schema catalogue (`shop asyncapi`, `GET /asyncapi.json`).",
		"",
		"- **Key**: the aggregate id (UTF-8 string), so one aggregate's events stay in order in one partition.",
		"- **Value**: Avro binary in the Confluent wire format: magic byte 0, the 4-byte big-endian schema id, then the record.",
		"- **Subjects**: TopicRecordNameStrategy, `" + example + "`, so several event types share a topic.",
		"- **Compatibility**: every subject is " + Compatibility + ": a consumer with any version reads events of every other version. A breaking change is a new topic (new version suffix), never an edit in place.",
		"- **Headers**: CloudEvents Kafka protocol binding (binary mode) plus W3C trace context; see each message's headers.",
		"- **Retention**: infinite; the log is the source of every replay. Delivery is at least once: deduplicate on `ce_id`.",
		"- **Personal data** (an email address, a name) is sealed per customer (crypto-shredding): a field reading `pii:v1:<base64>` is AES-256-GCM ciphertext (12-byte nonce, then ciphertext and tag; the key id is the additional data) under the key the record's `pii_key_id` names. The keys stay in the shop; a consumer that needs the clear text asks the shop's customers context for it, and gets nothing once the customer is erased (`CustomerErased`): erasure is the key's destruction, so replays keep working and stay exact.",
	}, "\n")
}

func headersSchema(hs []Header) object {
	props := object{}
	required := []string{}
	for _, h := range hs {
		rely := "Consumers may rely on it."
		if !h.Rely {
			rely = "Informational: consumers must not base decisions on it."
		}
		presence := "Present on every record."
		if !h.Always {
			presence = "Not on every record."
		} else {
			required = append(required, h.Name)
		}
		props[h.Name] = object{"type": "string", "description": h.Meaning + " " + presence + " " + rely}
	}
	return object{"type": "object", "properties": props, "required": required}
}

func message(in Input, t *schemas.Type, headers object) (object, error) {
	cur := t.Current()
	var payload json.RawMessage
	if err := json.Unmarshal([]byte(cur.Schema), &payload); err != nil {
		return nil, fmt.Errorf("asyncapi: %s v%d: %w", t.Name, cur.Number, err)
	}
	var versions []object
	var numbers []string
	for _, v := range t.Versions() {
		var s json.RawMessage
		if err := json.Unmarshal([]byte(v.Schema), &s); err != nil {
			return nil, fmt.Errorf("asyncapi: %s v%d: %w", t.Name, v.Number, err)
		}
		ver := object{"version": v.Number, "current": v == cur, "schema": s}
		n := fmt.Sprintf("v%d", v.Number)
		if v.Retired != "" {
			ver["retired"] = v.Retired
			n += " (retired: read, never written)"
		}
		versions = append(versions, ver)
		numbers = append(numbers, n)
	}
	var doc struct {
		Doc string `json:"doc"`
	}
	_ = json.Unmarshal([]byte(cur.Schema), &doc)
	subject := t.Subject()
	desc := fmt.Sprintf("Topic %s, registry subject %s. Written with v%d; schema versions %s (older versions are read and upcast, see x-shop-versions).",
		t.Topic, subject, cur.Number, strings.Join(numbers, ", "))
	return object{
		"name":        t.Name,
		"title":       t.Name[strings.LastIndex(t.Name, ".")+1:],
		"summary":     cmp.Or(doc.Doc, t.Name),
		"description": desc,
		"contentType": "application/avro",
		"headers":     headers,
		"payload":     object{"schemaFormat": AvroSchemaFormat, "schema": payload},
		"correlationId": object{
			"description": "The request that started the chain of events.",
			"location":    "$message.header#/ce_correlationid",
		},
		"bindings": object{"kafka": object{
			"key":                     object{"type": "string", "description": "The aggregate id."},
			"schemaIdLocation":        "payload",
			"schemaIdPayloadEncoding": "confluent",
			"schemaLookupStrategy":    "TopicRecordNameStrategy",
			"bindingVersion":          KafkaBindingVersion,
		}},
		"x-shop-subject":  subject,
		"x-shop-current":  cur.Number,
		"x-shop-versions": versions,
	}, nil
}

// operationsOf is a send operation per component and topic it writes, and
// a receive operation per consumer group (or group-less reader) and topic
// it reads.
func operationsOf(in Input, byTopic map[string][]*schemas.Type) (object, error) {
	ops := object{}
	add := func(id string, op object) error {
		if _, dup := ops[id]; dup {
			return fmt.Errorf("asyncapi: operation %s twice (two flows of one component and group?)", id)
		}
		ops[id] = op
		return nil
	}
	// Sends, grouped by component across its flows.
	writes := map[string]map[string][]string{} // component → topic → types
	descs := map[string]string{}
	for _, f := range in.Flows {
		for _, name := range f.Writes {
			t, ok := in.Catalog.Type(name)
			if !ok {
				return nil, fmt.Errorf("asyncapi: component %s writes %s, which is not in the catalogue", f.Component, name)
			}
			if writes[f.Component] == nil {
				writes[f.Component] = map[string][]string{}
			}
			if !slices.Contains(writes[f.Component][t.Topic], name) {
				writes[f.Component][t.Topic] = append(writes[f.Component][t.Topic], name)
			}
		}
		if len(f.Writes) > 0 && descs[f.Component] == "" {
			descs[f.Component] = f.Description
		}
	}
	for component, topics := range writes {
		for topic, names := range topics {
			slices.Sort(names)
			msgs := make([]object, 0, len(names))
			for _, n := range names {
				msgs = append(msgs, ref("channels", topic, "messages", n))
			}
			desc := fmt.Sprintf("%s appends %s to %s through its transactional outbox (PostgreSQL); the outbox relay publishes them with the idempotent producer, in order per aggregate.",
				component, strings.Join(names, ", "), topic)
			if d := descs[component]; d != "" {
				desc = d + " " + desc
			}
			if err := add(component+".send."+topic, object{
				"action":           "send",
				"title":            component + " writes " + topic,
				"description":      desc,
				"channel":          ref("channels", topic),
				"messages":         msgs,
				"x-shop-component": component,
			}); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range in.Flows {
		for _, topic := range f.Reads {
			if _, ok := byTopic[topic]; !ok {
				return nil, fmt.Errorf("asyncapi: component %s reads %s, which carries no event type of the catalogue", f.Component, topic)
			}
			msgs := make([]object, 0, len(byTopic[topic]))
			for _, t := range byTopic[topic] {
				msgs = append(msgs, ref("channels", topic, "messages", t.Name))
			}
			op := object{
				"action":           "receive",
				"channel":          ref("channels", topic),
				"messages":         msgs,
				"x-shop-component": f.Component,
			}
			id := f.Component + ".receive." + topic
			if f.Group != "" {
				id = f.Group + ".receive." + topic
				op["title"] = "consumer group " + f.Group + " (" + f.Component + ") reads " + topic
				op["description"] = strings.TrimSpace(f.Description + " Consumer group " + f.Group + ", component " + f.Component + "; commits offsets after its effects.")
				op["x-consumer-group"] = f.Group
				op["bindings"] = object{"kafka": object{
					"groupId":        object{"type": "string", "enum": []string{f.Group}},
					"bindingVersion": KafkaBindingVersion,
				}}
			} else {
				op["title"] = f.Component + " reads " + topic + " (no consumer group)"
				op["description"] = strings.TrimSpace(f.Description + " No consumer group: every instance reads every partition, commits no offsets.")
			}
			if err := add(id, op); err != nil {
				return nil, err
			}
		}
	}
	return ops, nil
}
