package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/schemas"
)

// ErrPoison marks a record no retry can read.
var ErrPoison = errors.New("poison record")

// Subject is the registry subject of an event type on a topic
// (TopicRecordNameStrategy).
func Subject(topic, typeName string) string { return schemas.Subject(topic, typeName) }

// Serde encodes events into the Confluent wire format and decodes them back,
// upcast to the current version. It caches schema ids both ways, so after
// the first use of each schema it makes no registry call. Safe for
// concurrent use.
type Serde struct {
	reg *sr.Client
	cat *schemas.Catalog

	mu      sync.RWMutex
	ids     map[*schemas.Version]int // known version → its schema id
	writers map[int]*schemas.Version // schema id → known version it is
}

// NewSerde returns a Serde over a registry client and the catalog.
func NewSerde(reg *sr.Client, cat *schemas.Catalog) *Serde {
	return &Serde{reg: reg, cat: cat, ids: map[*schemas.Version]int{}, writers: map[int]*schemas.Version{}}
}

// Catalog is the catalog the serde reads and writes with.
func (s *Serde) Catalog() *schemas.Catalog { return s.cat }

// RegisterAll sets the contract policy (schemas.Policy) on every subject of
// the catalogue, then registers the current version of every event type
// under its subject, so that the first command does not pay for it and a
// schema the registry refuses (incompatible change) stops the process at
// start.
func (s *Serde) RegisterAll(ctx context.Context) error {
	if err := SetPolicy(ctx, s.reg, s.cat); err != nil {
		return err
	}
	for _, t := range s.cat.Types() {
		if _, err := s.idFor(ctx, t.Topic, t.Current()); err != nil {
			return err
		}
	}
	return nil
}

func (s *Serde) idFor(ctx context.Context, topic string, v *schemas.Version) (int, error) {
	s.mu.RLock()
	id, ok := s.ids[v]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}
	subject := Subject(topic, v.Type.Name) // after the cache: it allocates
	ss, err := s.reg.CreateSchema(ctx, subject, sr.Schema{Schema: v.Schema, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("register schema %s: %w", subject, err)
	}
	s.mu.Lock()
	s.ids[v] = ss.ID
	s.writers[ss.ID] = v
	s.mu.Unlock()
	return ss.ID, nil
}

// Encode writes ev with the current version of its schema, registering the
// schema on first use. The event's type must belong to topic. The payload
// after the 5-byte header is written by the catalogue's typed path
// (schemas.Version.Encode: hamba on the Go struct, no generic value),
// byte-identical to goavro's encoding of the same event.
func (s *Serde) Encode(ctx context.Context, topic string, ev schemas.Event) ([]byte, error) {
	t, err := s.cat.TypeOf(ev)
	if err != nil {
		return nil, err
	}
	v := t.Current()
	if t.Topic != topic {
		return nil, fmt.Errorf("event %s belongs to %s, not %s", t.Name, t.Topic, topic)
	}
	id, err := s.idFor(ctx, topic, v)
	if err != nil {
		return nil, err
	}
	var header [5]byte
	binary.BigEndian.PutUint32(header[1:], uint32(id))
	return v.Encode(header[:], ev)
}

// EncodeVersion writes a generic value with a given schema version, by
// goavro (the generic path). The shop itself writes only current versions,
// with Encode; this exists for tools and tests that must produce records as
// an older build would have.
func (s *Serde) EncodeVersion(ctx context.Context, topic string, v *schemas.Version, native map[string]any) ([]byte, error) {
	if v.Type.Topic != topic {
		return nil, fmt.Errorf("event %s belongs to %s, not %s", v.Type.Name, v.Type.Topic, topic)
	}
	id, err := s.idFor(ctx, topic, v)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 5, 64)
	binary.BigEndian.PutUint32(buf[1:], uint32(id))
	buf, err = v.Codec.BinaryFromNative(buf, native)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", v.Type.Name, err)
	}
	return buf, nil
}

// Decode reads a wire-format value written on topic with any known version
// of its schema and returns the event upcast to the current version, with
// the writer's version. The payload is read by schemas.Version.Decode: the
// typed path (hamba into the Go struct) for the current version and for
// older versions that Avro schema resolution reads as their upcasters do;
// goavro, the upcaster chain and ToEvent for any other older version.
func (s *Serde) Decode(ctx context.Context, topic string, value []byte) (schemas.Event, *schemas.Version, error) {
	if len(value) < 5 || value[0] != 0 {
		return nil, nil, fmt.Errorf("%w: not in the Confluent wire format", ErrPoison)
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	v, err := s.writer(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if v.Type.Topic != topic {
		return nil, nil, fmt.Errorf("%w: event %s does not belong on %s", ErrPoison, v.Type.Name, topic)
	}
	ev, err := v.Decode(value[5:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrPoison, err)
	}
	return ev, v, nil
}

// writer finds which known version schema id is, asking the registry once.
func (s *Serde) writer(ctx context.Context, id int) (*schemas.Version, error) {
	s.mu.RLock()
	v, ok := s.writers[id]
	s.mu.RUnlock()
	if ok {
		return v, nil
	}
	sch, err := s.reg.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil, fmt.Errorf("%w: schema id %d is not in the registry", ErrPoison, id)
		}
		return nil, fmt.Errorf("fetch schema %d: %w", id, err)
	}
	codec, err := goavro.NewCodec(sch.Schema)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d does not parse: %v", ErrPoison, id, err)
	}
	v, err = s.cat.Identify(codec)
	if errors.Is(err, schemas.ErrUnknownSchema) {
		// A version a newer build writes (a rolling upgrade): read by
		// resolution into this build's current version.
		v, err = s.cat.Newer(sch.Schema)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %w", ErrPoison, id, err)
	}
	s.mu.Lock()
	s.writers[id] = v
	s.mu.Unlock()
	return v, nil
}
