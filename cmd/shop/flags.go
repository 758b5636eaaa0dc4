package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/kafkasec"
)

// newFlags returns a flag set whose errors name the flag and go to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shop "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// envName is the environment variable of a flag: --data-dir → SHOP_DATA_DIR.
func envName(flagName string) string {
	return "SHOP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads args, then fills every flag not given on the command line
// from its SHOP_* variable. A bad value names the flag and the variable.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q (flag --%s): %w", envName(f.Name), v, f.Name, e)
			}
		}
	})
	return err
}

// printConfig writes every flag's value, masking passwords in URLs and any
// flag whose name says it is a secret.
func printConfig(w io.Writer, fs *flag.FlagSet) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		lines = append(lines, fmt.Sprintf("  --%s=%s", f.Name, mask(f.Name, f.Value.String())))
	})
	sort.Strings(lines)
	fmt.Fprintf(w, "%s configuration:\n%s\n", fs.Name(), strings.Join(lines, "\n"))
}

func mask(name, v string) string {
	secret := strings.Contains(name, "password") || strings.Contains(name, "secret") || strings.HasSuffix(name, "-key") ||
		strings.HasSuffix(name, "-keys") || strings.HasSuffix(name, "-token")
	if secret {
		if v == "" {
			return ""
		}
		return "xxxxx"
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return v
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	if len(*l) == 0 {
		return fmt.Errorf("empty list")
	}
	return nil
}

// The infrastructure flags mean one thing in every subcommand: --brokers
// is the Kafka the shop uses (where a subcommand can embed one, unset
// means the embedded broker), and --data-dir the data directory of the
// embedded infrastructure (`shop infra` or `shop dev`), whose
// endpoints.json fills the infrastructure flags a subcommand was not given.
const (
	adminHTTPUsage = "admin listener address: GET /metrics, /lag, /dev/endpoints (shop dev), /livez, /readyz and /debug/pprof/, off the public port"
	brokersUsage   = "Kafka seed brokers the shop uses, comma-separated"
	// A running shop dev's admin listener, whose GET /dev/endpoints names
	// its infrastructure.
	adminTargetUsage = "admin URL of a running shop dev (its GET /dev/endpoints names the infrastructure), e.g. http://127.0.0.1:9464"
	dataDirUsage     = "data directory of the embedded infrastructure (shop infra or shop dev)"
)

// isSet reports whether the command line or the environment set the flag
// name of fs.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// endpointsDir is the --data-dir whose endpoints.json a subcommand reads:
// dir when given, or when its endpoints.json is there; "" when the
// default directory holds none (the flags' own defaults then apply).
func endpointsDir(dir string, given bool) string {
	if given {
		return dir
	}
	if _, err := os.Stat(filepath.Join(dir, "endpoints.json")); err != nil {
		return ""
	}
	return dir
}

// addStaffKeyFlag is --staff-key, how a subcommand calls a shop's staff
// routes (GET /dev/endpoints, the catalogue a load test sets up).
func addStaffKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("staff-key", "", "a staff API key of the shop (default: the one in --data-dir's secrets.json, which shop dev makes)")
}

// staffKey is key, or else the staff key of dir's secrets.json ("" when
// there is none).
func staffKey(key, dir string) string {
	if key != "" {
		return key
	}
	s, err := devstack.ReadSecrets(dir)
	if err != nil {
		return ""
	}
	return s.StaffKey
}

// kafkaSecFlags are how a subcommand's Kafka clients authenticate and
// encrypt (package kafkasec), the same flags wherever --brokers is.
type kafkaSecFlags struct {
	user, password, mechanism, caFile *string
	tls                               *bool
}

func addKafkaSecFlags(fs *flag.FlagSet) *kafkaSecFlags {
	return &kafkaSecFlags{
		user:      fs.String("kafka-user", "", "SASL user of the shop's Kafka clients (a component's principal); empty: no SASL"),
		password:  fs.String("kafka-password", "", "SASL password of --kafka-user"),
		mechanism: fs.String("kafka-sasl-mechanism", kafkasec.ScramSHA512, "SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256, or PLAIN (with --kafka-tls only)"),
		tls:       fs.Bool("kafka-tls", false, "connect to Kafka over TLS"),
		caFile:    fs.String("kafka-ca-file", "", "PEM file of the CA the brokers' certificates chain to (default: the system's roots)"),
	}
}

// security is what the flags say, checked: a bad combination names its
// flag.
func (f *kafkaSecFlags) security() (kafkasec.Security, error) {
	s := kafkasec.Security{User: *f.user, Password: *f.password, Mechanism: *f.mechanism, TLS: *f.tls, CAFile: *f.caFile}
	_, err := s.Opts()
	return s, err
}

// opts are the franz-go options of the flags (security must have passed).
func (f *kafkaSecFlags) opts() []kgo.Opt {
	s, _ := f.security()
	opts, _ := s.Opts()
	return opts
}
