package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
)

//go:embed avro/*.avsc avro/published.json
var avroFiles embed.FS

// ErrUnknownSchema is returned for a writer schema that matches no known
// version of any event type: the record cannot be read by this build.
var ErrUnknownSchema = errors.New("unknown writer schema")

// Upcaster lifts the generic (goavro native) value of one version of an
// event to the next version. It must not keep or mutate its argument.
type Upcaster func(old map[string]any) (map[string]any, error)

// definition is one event type of the contract: its topic, its current
// version, a constructor of its Go form and the typed decoder into it, the
// upcasters from each older version to the next, the older versions Avro
// schema resolution reads as the upcasters do, and the versions retired for
// breaking the policy.
type definition struct {
	topic     string
	current   int
	newEvent  func() Event                          // a pointer to a new zero event
	decode    func(*avro.Reader, avro.Schema) Event // typedDecode of the Go type
	upcasters map[int]Upcaster
	// resolvable older versions are decoded by the typed path: hamba's Avro
	// schema resolution with the current schema as reader and the version
	// as writer, straight into the Go struct, instead of goavro and the
	// upcaster chain. Declare a version only when resolution (renames by
	// alias, added fields by default, removed fields skipped) is all its
	// upcasters do; TestResolutionReadsOldRecordsAsTheUpcasters holds the
	// claim on sample records of each declared version.
	resolvable map[int]bool
	// retired versions broke compatibility with the versions before them.
	// This build never writes or registers them, still reads their records,
	// and every later version must be compatible with them (see Policy).
	retired map[int]string
}

// event is the definition of Go event type T on topic, at version 1.
func event[T Event](topic string) definition {
	return definition{topic: topic, current: 1,
		newEvent: func() Event { return any(new(T)).(Event) },
		decode:   typedDecode[T]}
}

func definitions() []definition {
	productRegistered := event[ProductRegistered](TopicProducts)
	productRegistered.current = 3
	productRegistered.upcasters = map[int]Upcaster{1: upcastProductRegisteredV1, 2: upcastProductRegisteredV2}
	productRegistered.resolvable = map[int]bool{1: true, 2: true}
	productRegistered.retired = map[int]string{2: "renamed the required field quantity to initial_stock: v1 readers could not read it; v3 restores v1's names with v2's as aliases"}
	// v2 adds the payment's deadline, null in v1 records.
	paymentRequested := event[PaymentRequested](TopicPayments)
	paymentRequested.current = 2
	paymentRequested.upcasters = map[int]Upcaster{1: upcastPaymentRequestedV1}
	paymentRequested.resolvable = map[int]bool{1: true}
	// v2 of the events with personal data add the key it is encrypted
	// under, null in v1 records (plain text).
	signedUp, emailRequested, emailSent := withPIIKey(event[CustomerSignedUp](TopicCustomers)),
		withPIIKey(event[EmailRequested](TopicEmails)), withPIIKey(event[EmailSent](TopicEmails))
	return []definition{
		signedUp,
		event[CustomerErased](TopicCustomers),
		productRegistered,
		event[ProductRestocked](TopicProducts),
		event[PhotoWasAdded](TopicProducts),
		event[StockReserved](TopicStock),
		event[StockReservationRejected](TopicStock),
		event[StockReleased](TopicStock),
		event[StockReceived](TopicStock),
		event[ProductSoldOut](TopicStock),
		event[ItemAddedToCart](TopicCarts),
		event[ItemRemovedFromCart](TopicCarts),
		event[CartCheckedOut](TopicCarts),
		event[OrderPlaced](TopicOrders),
		event[OrderConfirmed](TopicOrders),
		event[OrderCancelled](TopicOrders),
		paymentRequested,
		event[PaymentSucceeded](TopicPayments),
		event[PaymentFailed](TopicPayments),
		event[SepaTransferRequested](TopicSepaRequests),
		event[InvoiceIssued](TopicInvoices),
		emailRequested,
		emailSent,
		event[ReviewAdded](TopicReviews),
	}
}

// withPIIKey is d at v2, which adds pii_key_id to v1, null in v1 records.
func withPIIKey(d definition) definition {
	d.current = 2
	d.upcasters = map[int]Upcaster{1: func(old map[string]any) (map[string]any, error) {
		out := maps.Clone(old)
		out["pii_key_id"] = nil
		return out, nil
	}}
	d.resolvable = map[int]bool{1: true}
	return d
}

// upcastPaymentRequestedV1 gives a v1 record v2's expires_at, null: it
// was requested before the saga recorded deadlines in the event.
func upcastPaymentRequestedV1(old map[string]any) (map[string]any, error) {
	out := maps.Clone(old)
	out["expires_at"] = nil
	return out, nil
}

// upcastProductRegisteredV1 renames quantity → initial_stock and
// photo → photo_url, and fills the new currency field with its default.
func upcastProductRegisteredV1(old map[string]any) (map[string]any, error) {
	out := maps.Clone(old)
	out["initial_stock"] = old["quantity"]
	out["photo_url"] = old["photo"]
	out["currency"] = "EUR"
	delete(out, "quantity")
	delete(out, "photo")
	return out, nil
}

// upcastProductRegisteredV2 renames initial_stock and photo_url back to
// v1's names, which v3 uses again.
func upcastProductRegisteredV2(old map[string]any) (map[string]any, error) {
	out := maps.Clone(old)
	out["quantity"] = old["initial_stock"]
	out["photo"] = old["photo_url"]
	delete(out, "initial_stock")
	delete(out, "photo_url")
	return out, nil
}

// Version is one version of one event type's Avro schema.
type Version struct {
	Type   *Type
	Number int
	File   string // the .avsc file name, e.g. shop.orders.OrderPlaced.v1.avsc
	Schema string // the .avsc text, as registered
	// Codec is goavro's codec of the version: the generic path, for
	// generic values (Catalog.Native, Type.Upcast) and DecodeGeneric.
	Codec *goavro.Codec
	// typed is the hamba schema Encode and Decode use: the version's own
	// for the current version, the resolution of the current schema
	// against this one for a resolvable older version, nil otherwise.
	typed avro.Schema
	// Retired says why the version broke the policy; empty for a live
	// version. A retired version is read, never written nor registered.
	Retired string
}

// Subject is the registry subject of the type's versions: Confluent's
// TopicRecordNameStrategy, "<topic>-<record full name>", so that the several
// event types of one topic evolve independently.
func (t *Type) Subject() string { return Subject(t.Topic, t.Name) }

// Subject is the TopicRecordNameStrategy subject of a record on a topic.
func Subject(topic, recordName string) string { return topic + "-" + recordName }

// Type is one event type of the contract.
type Type struct {
	Name     string // Avro full name, e.g. shop.catalog.ProductRegistered
	Topic    string
	versions map[int]*Version
	current  int
	def      definition
	typedErr error // why the typed path could not be built; nil when it was
}

// Current is the version this build writes and every read is upcast to.
func (t *Type) Current() *Version { return t.versions[t.current] }

// Version returns version n of the type's schema.
func (t *Type) Version(n int) (*Version, bool) { v, ok := t.versions[n]; return v, ok }

// Versions returns every version, oldest first.
func (t *Type) Versions() []*Version {
	out := make([]*Version, 0, len(t.versions))
	for _, n := range slices.Sorted(maps.Keys(t.versions)) {
		out = append(out, t.versions[n])
	}
	return out
}

// Upcast lifts a generic value of version from to the current version,
// one step at a time.
func (t *Type) Upcast(from int, native map[string]any) (map[string]any, error) {
	for v := from; v < t.current; v++ {
		up := t.def.upcasters[v]
		next, err := up(native)
		if err != nil {
			return nil, fmt.Errorf("upcast %s v%d to v%d: %w", t.Name, v, v+1, err)
		}
		native = next
	}
	return native, nil
}

// ToEvent turns a generic value of the current version into the Go event.
func (t *Type) ToEvent(native map[string]any) (Event, error) {
	ev := t.def.newEvent()
	if err := fromNative(native, ev); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return derefEvent(ev), nil
}

// Catalog is every event type of the contract, loaded from the embedded
// schemas. It is immutable and safe for concurrent use.
type Catalog struct {
	types     map[string]*Type
	canonical map[string]*Version
}

var fileName = regexp.MustCompile(`^(.+)\.v([0-9]+)\.avsc$`)

// Load parses the embedded schemas (the files of schemas/avro) and checks
// them against the definitions (see LoadFS). It also requires the typed
// path (Version.Encode, Version.Decode) of every type to build: a Go event
// that no longer fits its current schema, or a version declared resolvable
// that does not resolve, fails at start.
func Load() (*Catalog, error) {
	c, err := LoadFS(Embedded())
	if err != nil {
		return nil, err
	}
	for _, t := range c.Types() {
		if t.typedErr != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, t.typedErr)
		}
	}
	return c, nil
}

// LoadFS parses the .avsc files at the root of fsys and checks them against
// the definitions: every definition has versions 1..current and an upcaster
// for each step, the current version is not retired, every file belongs to
// a definition, and no two versions share a canonical form (a writer schema
// must identify exactly one version). It does not check compatibility
// between versions: that is CheckPolicy. A type whose typed path does not
// build (its Go type does not fit the current schema of fsys) is left on
// the generic path, goavro only; Load refuses that.
func LoadFS(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{types: map[string]*Type{}, canonical: map[string]*Version{}}
	for _, d := range definitions() {
		name := d.newEvent().EventType()
		if _, dup := c.types[name]; dup {
			return nil, fmt.Errorf("event type %s defined twice", name)
		}
		c.types[name] = &Type{Name: name, Topic: d.topic, versions: map[int]*Version{}, current: d.current, def: d}
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read schemas: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".avsc") {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("schema file %s: name must be <full name>.v<N>.avsc", e.Name())
		}
		t, ok := c.types[m[1]]
		if !ok {
			return nil, fmt.Errorf("schema file %s: no event type %s is defined", e.Name(), m[1])
		}
		n, _ := strconv.Atoi(m[2])
		text, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		codec, err := goavro.NewCodec(string(text))
		if err != nil {
			return nil, fmt.Errorf("schema file %s: %w", e.Name(), err)
		}
		v := &Version{Type: t, Number: n, File: e.Name(), Schema: string(text), Codec: codec, Retired: t.def.retired[n]}
		if other, dup := c.canonical[codec.CanonicalSchema()]; dup {
			return nil, fmt.Errorf("%s v%d and %s v%d have the same canonical form", t.Name, n, other.Type.Name, other.Number)
		}
		c.canonical[codec.CanonicalSchema()] = v
		t.versions[n] = v
	}
	for _, t := range c.types {
		for n := 1; n <= t.current; n++ {
			if _, ok := t.versions[n]; !ok {
				return nil, fmt.Errorf("%s: schema version %d is missing", t.Name, n)
			}
			if n < t.current && t.def.upcasters[n] == nil {
				return nil, fmt.Errorf("%s: no upcaster from v%d to v%d", t.Name, n, n+1)
			}
		}
		if t.def.retired[t.current] != "" {
			return nil, fmt.Errorf("%s: the current version %d is retired", t.Name, t.current)
		}
		if len(t.versions) != t.current {
			return nil, fmt.Errorf("%s: schema files beyond current version %d", t.Name, t.current)
		}
		// A typed path that does not build (a history under test whose Go
		// type no longer fits) leaves the type on the generic path; Load
		// refuses it.
		_ = t.prepareTyped()
	}
	return c, nil
}

// Type returns the event type with the given Avro full name.
func (c *Catalog) Type(name string) (*Type, bool) { t, ok := c.types[name]; return t, ok }

// TypeOf returns the type of a Go event.
func (c *Catalog) TypeOf(ev Event) (*Type, error) {
	t, ok := c.types[ev.EventType()]
	if !ok {
		return nil, fmt.Errorf("event type %s is not in the catalog", ev.EventType())
	}
	return t, nil
}

// Types returns every event type, sorted by name.
func (c *Catalog) Types() []*Type {
	out := make([]*Type, 0, len(c.types))
	for _, n := range slices.Sorted(maps.Keys(c.types)) {
		out = append(out, c.types[n])
	}
	return out
}

// Identify finds the known version whose canonical form equals the given
// writer schema's. It returns ErrUnknownSchema when none does.
func (c *Catalog) Identify(writer *goavro.Codec) (*Version, error) {
	v, ok := c.canonical[writer.CanonicalSchema()]
	if !ok {
		return nil, ErrUnknownSchema
	}
	return v, nil
}

// Native turns a Go event into the generic value of its current version,
// ready for goavro.
func (c *Catalog) Native(ev Event) (*Version, map[string]any, error) {
	t, err := c.TypeOf(ev)
	if err != nil {
		return nil, nil, err
	}
	m, err := toNative(ev)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return t.Current(), m, nil
}
