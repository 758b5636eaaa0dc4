package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"

	"shopstream/internal/app"
	"shopstream/schemas"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// ---------------------------------------------------------------------------
// What the code says a deployment must provide.

// needEnv is the `shop run` variable that points a process at each piece
// of infrastructure a component needs (app.Requires, the component table).
var needEnv = map[app.Need]string{
	app.NeedKafka: "SHOP_BROKERS", app.NeedRegistry: "SHOP_REGISTRY_URL", app.NeedPostgres: "SHOP_POSTGRES_URL",
	app.NeedMongo: "SHOP_MONGO_URI", app.NeedSMTP: "SHOP_SMTP_ADDR", app.NeedCardPSP: "SHOP_CARD_PSP_URL",
	app.NeedSepaBank: "SHOP_SEPA_BANK_URL",
}

// componentSettings are the settings a component must be given on top of
// its infrastructure: the email quota is the provider's for the whole
// group, so every instance must be given the same one, not rely on a
// default.
var componentSettings = map[string][]string{app.Email: {"SHOP_EMAIL_RATE"},
	// Every gateway instance must verify the tokens any of them signed, and
	// admit the same staff keys: secrets given to each, never defaults.
	app.Gateway: {"SHOP_AUTH_TOKEN_SECRET", "SHOP_STAFF_KEYS"}}

// needService is the compose service of each piece of infrastructure the
// components wait for, healthy; needOneShot the one-shot services that must
// have completed first (topics and the shop principal's ACLs created,
// migrations applied).
var (
	needService = map[app.Need]string{app.NeedKafka: "kafka", app.NeedRegistry: "schema-registry", app.NeedPostgres: "postgres", app.NeedMongo: "mongo"}
	needOneShot = map[app.Need][]string{app.NeedKafka: {"topics", "acls"}, app.NeedPostgres: {"migrate"}}
)

// oneShots are the compose one-shot services.
var oneShots = []string{"topics", "acls", "migrate"}

// needsOf is the union of what comps need, from the component table.
func needsOf(comps []string) []app.Need {
	var out []app.Need
	for _, c := range comps {
		out = append(out, app.Requires(c)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// neededEnv is the environment a process running comps needs.
func neededEnv(comps []string) []string {
	var need []string
	for _, n := range needsOf(comps) {
		need = append(need, needEnv[n])
	}
	for _, c := range comps {
		need = append(need, componentSettings[c]...)
	}
	slices.Sort(need)
	return slices.Compact(need)
}

// TestEveryNeedHasItsVariable: a need added to the component table must
// be given a `shop run` variable here, or no deploy check would see it.
func TestEveryNeedHasItsVariable(t *testing.T) {
	for _, c := range app.Components() {
		if len(app.Requires(c)) == 0 {
			t.Errorf("component %s requires nothing in the component table", c)
		}
		for _, n := range app.Requires(c) {
			if needEnv[n] == "" {
				t.Errorf("component %s needs %s, which deploy_test.go's needEnv does not map to a variable", c, n)
			}
		}
	}
}

// expectedTopics is every topic the shop writes: schemas.Topics() and a
// dead-letter topic per topic with the same partitions
// (eventlog.EnsureTopics).
func expectedTopics() map[string]int {
	want := map[string]int{}
	for _, s := range schemas.Topics() {
		want[s.Name] = int(s.Partitions)
		want[s.Name+schemas.DLQSuffix] = int(s.Partitions)
	}
	return want
}

// envName is cmd/shop's: --data-dir → SHOP_DATA_DIR.
func envName(flag string) string {
	return "SHOP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// flagEnv returns the SHOP_* variables of the flags that the functions
// named funcs of cmd/shop register (fs.String("name", …), fs.Var(&v,
// "name", …)…), read from the source: package main cannot be imported.
func flagEnv(t *testing.T, funcs ...string) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	dir := filepath.Join(root, "cmd", "shop")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{"String": true, "Int": true, "Int64": true, "Uint": true, "Uint64": true, "Float64": true,
		"Bool": true, "Duration": true, "Var": true, "TextVar": true, "Func": true, "BoolFunc": true,
		"StringVar": true, "IntVar": true, "Float64Var": true, "BoolVar": true, "DurationVar": true}
	env := map[string]bool{}
	found := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || !slices.Contains(funcs, fd.Name.Name) {
				continue
			}
			found[fd.Name.Name] = true
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !kinds[sel.Sel.Name] {
					return true
				}
				for _, a := range call.Args[:min(2, len(call.Args))] {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ := strconv.Unquote(lit.Value)
						env[envName(name)] = true
						break
					}
				}
				return true
			})
		}
	}
	for _, f := range funcs {
		if !found[f] {
			t.Fatalf("cmd/shop has no func %s: update flagEnv's callers in deploy_test.go", f)
		}
	}
	return env
}

// runEnv is the SHOP_* variables `shop run` reads.
func runEnv(t *testing.T) map[string]bool {
	env := flagEnv(t, "runRun", "addInfraFlags", "addKafkaSecFlags", "addShopFlags")
	for _, v := range slices.Concat(mapValues(needEnv), slices.Concat(mapValues(componentSettings)...)) {
		if !env[v] {
			t.Fatalf("deploy_test.go requires %s, which is no flag of `shop run` (flags: %v)", v, sortedKeys(env))
		}
	}
	return env
}

func mapValues[K comparable, V any](m map[K]V) []V {
	var out []V
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// componentsOf returns the components a `shop run` command line runs, as
// `shop run` reads them: --components (or -components) on the command
// line, else SHOP_COMPONENTS, else all. ok is false when args is no
// `shop run`.
func componentsOf(args []string, env func(string) string) (comps []string, ok bool, err error) {
	if len(args) == 0 || args[0] != "run" {
		return nil, false, nil
	}
	value, given := "", false
	for i := 1; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		switch {
		case strings.HasPrefix(a, "components="):
			value, given = strings.TrimPrefix(a, "components="), true
		case a == "components" && i+1 < len(args):
			value, given = args[i+1], true
			i++
		}
	}
	if !given {
		value = env("SHOP_COMPONENTS")
	}
	comps, err = app.ParseComponents(value)
	return comps, true, err
}

// httpPort is the port of a `shop run` command line's --http (default :8080).
func httpPort(args []string, env func(string) string) string {
	return listenPort(args, env, "http", ":8080")
}

// adminPort is the port of a `shop run` command line's --admin-http, the
// listener Prometheus scrapes ("" when neither it nor SHOP_ADMIN_HTTP
// names a fixed one: the default is a free loopback port).
func adminPort(args []string, env func(string) string) string {
	return listenPort(args, env, "admin-http", "")
}

// listenPort is the port of the listen address flag of a `shop run`
// command line, or of its SHOP_* variable, or of def.
func listenPort(args []string, env func(string) string, flag, def string) string {
	addr := env(envName(flag))
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		switch {
		case strings.HasPrefix(a, flag+"="):
			addr = strings.TrimPrefix(a, flag+"=")
		case a == flag && i+1 < len(args):
			addr = args[i+1]
		}
	}
	if addr == "" {
		addr = def
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// checkCoverage reports components run by no group or by several.
func checkCoverage(t *testing.T, what string, groups map[string][]string) {
	t.Helper()
	runBy := map[string][]string{}
	for g, comps := range groups {
		for _, c := range comps {
			runBy[c] = append(runBy[c], g)
		}
	}
	for _, c := range app.Components() {
		switch by := runBy[c]; len(by) {
		case 1:
		case 0:
			t.Errorf("%s: component %s is run by no %s", what, c, what)
		default:
			sort.Strings(by)
			t.Errorf("%s: component %s is run by %d: %v (want exactly one)", what, c, len(by), by)
		}
	}
	for c, by := range runBy {
		for i, g := range by {
			if slices.Contains(by[:i], g) {
				t.Errorf("%s %s names component %s twice", what, g, c)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(abs, "docker-compose.yml")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		// The file gives every ${VAR} a default, or requires it from the
		// env file users copy (deploy/compose.env.example): interpolate
		// with that file's values, not the test runner's environment.
		Environment: exampleEnv(t),
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("shopstream", true)
		o.Profiles = profiles
	})
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// composeEnv returns a service's environment as a lookup function.
func composeEnv(s types.ServiceConfig) func(string) string {
	return func(k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
}

// shopServices splits the services built from the Dockerfile into
// component services (service → components) and the others (by their
// subcommand).
func shopServices(t *testing.T, p *types.Project) (components map[string][]string, other map[string]string) {
	t.Helper()
	components, other = map[string][]string{}, map[string]string{}
	abs, _ := filepath.Abs(root)
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		if ctx, _ := filepath.Abs(s.Build.Context); ctx != abs {
			t.Errorf("service %s builds %s, not the repository's Dockerfile", name, s.Build.Context)
			continue
		}
		comps, isRun, err := componentsOf(s.Command, composeEnv(s))
		switch {
		case err != nil:
			t.Errorf("service %s: %v", name, err)
		case isRun:
			components[name] = comps
		case len(s.Command) > 0:
			other[name] = s.Command[0]
		default:
			t.Errorf("service %s builds the shop image without a command (the image would run every component)", name)
		}
	}
	return components, other
}

func TestComposeEveryServiceHasImageOrBuild(t *testing.T) {
	p := loadCompose(t, "*")
	if len(p.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	images := map[string]bool{}
	for name, s := range p.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Build != nil {
			images[s.Image] = true
		}
	}
	// One image for every shop service: built once, not once per service.
	if len(images) != 1 || images[""] {
		t.Errorf("services built from the Dockerfile should share one image: name, got %v", sortedKeys(images))
	}
}

// oneShotServices are the services others wait for to complete.
func oneShotServices(p *types.Project) map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				out[dep] = true
			}
		}
	}
	return out
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadCompose(t, "*")
	once := oneShotServices(p)
	for _, name := range oneShots {
		if !once[name] {
			t.Errorf("one-shot service %s: nothing waits for it with service_completed_successfully", name)
		}
	}
	for name, s := range p.Services {
		if once[name] {
			if s.Restart != "" && s.Restart != types.RestartPolicyNo {
				t.Errorf("one-shot service %s has restart: %s; it must run once and exit", name, s.Restart)
			}
			continue
		}
		h := s.HealthCheck
		if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
			t.Errorf("long-running service %s has no health check", name)
		}
	}
	// Whatever waits for service_healthy must have a health check.
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if ds, ok := p.Services[dep]; !ok || ds.HealthCheck == nil {
				t.Errorf("service %s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
	}
}

func TestComposeComponentServices(t *testing.T) {
	p := loadCompose(t, "*")
	groups, other := shopServices(t, p)
	if len(groups) == 0 {
		t.Fatal("no service runs `shop run --components=…`")
	}
	checkCoverage(t, "compose service", groups)
	for name, cmd := range other {
		if cmd != "migrate" && cmd != "acls" {
			t.Errorf("service %s runs `shop %s`; want run, migrate or acls", name, cmd)
		}
	}
	if !slices.Contains(mapValues(other), "migrate") {
		t.Error("no service runs `shop migrate`")
	}
	for name, comps := range groups {
		s := p.Services[name]
		for _, n := range needsOf(comps) {
			if dep := needService[n]; dep != "" {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("service %s (%v) needs %s: it must depend on %s with condition service_healthy", name, comps, n, dep)
				}
			}
			for _, dep := range needOneShot[n] {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("service %s (%v) needs %s: it must depend on %s with condition service_completed_successfully", name, comps, n, dep)
				}
			}
		}
		// The health check asks /readyz on the --http port.
		port := httpPort(s.Command, composeEnv(s))
		if h := s.HealthCheck; h != nil && !strings.Contains(strings.Join(h.Test, " "), ":"+port+"/readyz") {
			t.Errorf("service %s: health check %q does not ask :%s/readyz", name, h.Test, port)
		}
		if slices.Contains(comps, app.PaymentsSepa) {
			if n := s.GetScale(); n != 1 {
				t.Errorf("service %s runs the SEPA caller, which must be single active: scale %d", name, n)
			}
		}
	}
}

// hostsOf returns the hosts an address-valued variable names.
func hostsOf(key, value string) []string {
	var hosts []string
	for _, part := range strings.Split(value, ",") {
		part = strings.TrimSpace(part)
		if strings.Contains(part, "://") {
			if u, err := url.Parse(part); err == nil {
				hosts = append(hosts, u.Hostname())
			}
			continue
		}
		if h, _, err := net.SplitHostPort(part); err == nil && h != "" { // ":9464" is a listen address
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func TestComposeComponentEnvironment(t *testing.T) {
	p := loadCompose(t, "*")
	known := runEnv(t)
	for c := range componentSettings {
		if !slices.Contains(app.Components(), c) {
			t.Errorf("deploy_test.go's componentSettings names %s, which is no component", c)
		}
	}
	groups, other := shopServices(t, p)
	for name, comps := range groups {
		s := p.Services[name]
		env := composeEnv(s)
		for _, v := range neededEnv(comps) {
			if env(v) == "" {
				t.Errorf("service %s (%v) lacks %s", name, comps, v)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "SHOP_") && !known[k] {
				t.Errorf("service %s sets %s, which no flag of `shop run` reads", name, k)
			}
		}
		// Every address points at a service this one waits for.
		for k, v := range s.Environment {
			if v == nil || !strings.HasPrefix(k, "SHOP_") {
				continue
			}
			for _, h := range hostsOf(k, *v) {
				if _, ok := p.Services[h]; !ok {
					t.Errorf("service %s: %s=%s names host %s, which is no service", name, k, *v, h)
				} else if _, ok := s.DependsOn[h]; !ok {
					t.Errorf("service %s: %s=%s names %s, which it does not depend on", name, k, *v, h)
				}
			}
		}
	}
	migrateEnv := flagEnv(t, "runMigrate")
	for name, cmd := range other {
		if cmd != "migrate" {
			continue
		}
		s := p.Services[name]
		if composeEnv(s)("SHOP_POSTGRES_URL") == "" && !slices.ContainsFunc(s.Command, func(a string) bool { return strings.Contains(a, "postgres-url") }) {
			t.Errorf("service %s runs `shop migrate` without SHOP_POSTGRES_URL", name)
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "SHOP_") && !migrateEnv[k] {
				t.Errorf("service %s sets %s, which no flag of `shop migrate` reads", name, k)
			}
		}
		if d, ok := s.DependsOn["postgres"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("service %s must wait for postgres to be healthy", name)
		}
	}
}

// topicCommand is one `kafka-topics.sh --create` line.
type topicCommand struct {
	topic, bootstrap    string
	partitions          int
	configs             map[string]string
	ifNotExists, create bool
}

// parseTopicCommands reads the kafka-topics.sh --create lines of a shell
// script (continuation lines joined).
func parseTopicCommands(script string) ([]topicCommand, error) {
	script = strings.ReplaceAll(script, "\\\n", " ")
	var out []topicCommand
	for _, line := range strings.Split(script, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasSuffix(fields[0], "kafka-topics.sh") || !slices.Contains(fields, "--create") {
			continue
		}
		c := topicCommand{configs: map[string]string{}}
		for i := 1; i < len(fields); i++ {
			f := fields[i]
			val := func() (string, error) {
				if i+1 >= len(fields) {
					return "", fmt.Errorf("%q: %s without a value", line, f)
				}
				i++
				return strings.Trim(fields[i], `"'`), nil
			}
			var err error
			var v string
			switch f {
			case "--create":
				c.create = true
			case "--if-not-exists":
				c.ifNotExists = true
			case "--topic":
				c.topic, err = val()
			case "--bootstrap-server":
				c.bootstrap, err = val()
			case "--partitions":
				if v, err = val(); err == nil {
					c.partitions, err = strconv.Atoi(v)
				}
			case "--config":
				if v, err = val(); err == nil {
					k, cv, _ := strings.Cut(v, "=")
					c.configs[k] = cv
				}
			case "--replication-factor", "--command-config":
				_, err = val()
			default:
				err = fmt.Errorf("%q: unexpected %s", line, f)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func TestComposeTopicsService(t *testing.T) {
	p := loadCompose(t)
	s, ok := p.Services["topics"]
	if !ok {
		t.Fatal("no service topics")
	}
	if d, ok := s.DependsOn["kafka"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("service topics must wait for kafka to be healthy")
	}
	if s.Image != p.Services["kafka"].Image {
		t.Errorf("service topics runs image %s; want the broker's (%s), whose kafka-topics.sh matches it", s.Image, p.Services["kafka"].Image)
	}
	cmds, err := parseTopicCommands(strings.Join(slices.Concat(s.Entrypoint, s.Command), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := expectedTopics()
	seen := map[string]bool{}
	for _, c := range cmds {
		if _, ok := want[c.topic]; !ok {
			t.Errorf("service topics creates %s, which is no topic of schemas.Topics() (nor its .dlq)", c.topic)
			continue
		}
		if seen[c.topic] {
			t.Errorf("service topics creates %s twice", c.topic)
		}
		seen[c.topic] = true
		if c.partitions != want[c.topic] {
			t.Errorf("topic %s: %d partitions, schemas.Topics() says %d", c.topic, c.partitions, want[c.topic])
		}
		if c.configs["retention.ms"] != "-1" {
			t.Errorf("topic %s: retention.ms=%q, want -1 (the log is the source of every replay)", c.topic, c.configs["retention.ms"])
		}
		if v, ok := c.configs["retention.bytes"]; ok && v != "-1" {
			t.Errorf("topic %s: retention.bytes=%s, want -1", c.topic, v)
		}
		if !c.ifNotExists {
			t.Errorf("topic %s: without --if-not-exists, a second `docker compose up` fails", c.topic)
		}
		if h, _, _ := net.SplitHostPort(c.bootstrap); h != "kafka" {
			t.Errorf("topic %s: --bootstrap-server %q, want the kafka service", c.topic, c.bootstrap)
		}
	}
	for _, name := range sortedKeys(want) {
		if !seen[name] {
			t.Errorf("service topics does not create %s (%d partitions)", name, want[name])
		}
	}
}

func TestComposeObservabilityProfile(t *testing.T) {
	obs := []string{"prometheus", "grafana"}
	def := loadCompose(t)
	for _, name := range obs {
		if _, ok := def.Services[name]; ok {
			t.Errorf("%s runs without --profile observability", name)
		}
		if _, ok := def.DisabledServices[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	all := loadCompose(t, "*")
	for name, s := range all.Services {
		want := slices.Contains(obs, name)
		if got := slices.Contains(s.Profiles, "observability"); got != want {
			t.Errorf("service %s: in profile observability %v, want %v", name, got, want)
		}
		if !want && len(s.Profiles) > 0 {
			t.Errorf("service %s has profiles %v: `docker compose up` would not start it", name, s.Profiles)
		}
	}
	// Every file the services mount exists.
	for name, s := range all.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Dockerfile

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from  string
		lines []string
	}
	var stages []*stage
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); strings.EqualFold(f[0], "FROM") {
			img := ""
			for _, w := range f[1:] {
				if !strings.HasPrefix(w, "--") {
					img = w
					break
				}
			}
			stages = append(stages, &stage{from: img})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a builder and a runtime", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("builder stage FROM %s; want a golang image", build.from)
	}
	// golang images set GOTOOLCHAIN=local: the builder's Go must be at
	// least go.mod's go line.
	if img, ok := strings.CutPrefix(build.from, "golang:"); ok {
		tag, _, _ := strings.Cut(img, "-")
		mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		need := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod)
		if need == nil {
			t.Fatal("go.mod has no go line")
		}
		if !goAtLeast(tag, string(need[1])) {
			t.Errorf("builder image %s is older than go.mod's go %s", build.from, need[1])
		}
	}
	built := false
	for _, l := range build.lines {
		if strings.Contains(l, "go build") && strings.Contains(l, "./cmd/shop") && strings.Contains(l, "CGO_ENABLED=0") {
			built = true
		}
	}
	if !built {
		t.Error("builder stage has no `CGO_ENABLED=0 go build … ./cmd/shop`")
	}
	var user, entrypoint string
	copied := false
	for _, l := range final.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(l[len(f[0]):])
		case "COPY":
			if strings.HasPrefix(f[1], "--from=") && f[len(f)-1] == "/shop" {
				copied = true
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("runtime stage runs as %q; want a non-root USER", user)
	}
	if entrypoint != `["/shop"]` {
		t.Errorf(`runtime ENTRYPOINT %s; want ["/shop"]`, entrypoint)
	}
	if !copied {
		t.Error("runtime stage does not COPY --from the builder to /shop")
	}
	// The compose health checks call wget inside the shop image.
	p := loadCompose(t)
	groups, _ := shopServices(t, p)
	for name := range groups {
		h := p.Services[name].HealthCheck
		if h != nil && slices.Contains(h.Test, "wget") && (strings.Contains(final.from, "distroless") || final.from == "scratch") {
			t.Errorf("service %s's health check runs wget, which the runtime image %s lacks", name, final.from)
		}
	}
	// The build context leaves out what would bust the cache or leak.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".shop"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

// goAtLeast reports whether the Go of an image tag ("1.26", "1.26.8") is
// at least version ("1.26.8"); a tag without a patch is the newest patch.
func goAtLeast(tag, version string) bool {
	have, want := strings.Split(tag, "."), strings.Split(version, ".")
	for i := range want {
		if i >= len(have) {
			return i >= 2
		}
		h, err1 := strconv.Atoi(have[i])
		w, err2 := strconv.Atoi(want[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if h != w {
			return h > w
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// deploy/k8s

type object struct {
	file       string
	raw        []byte
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

type keyRef struct{ Name, Key string }

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
	Exec      *struct{ Command []string } `json:"exec"`
	TCPSocket *struct{ Port any }         `json:"tcpSocket"`
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Ports   []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `json:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `json:"configMapRef"`
		SecretRef    *struct{ Name string } `json:"secretRef"`
	} `json:"envFrom"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
	Resources      struct {
		Requests map[string]any `json:"requests"`
		Limits   map[string]any `json:"limits"`
	} `json:"resources"`
}

type deployment struct {
	Spec struct {
		Replicas *int `json:"replicas"`
		Strategy struct {
			Type string `json:"type"`
		} `json:"strategy"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Containers []container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// number formats a YAML scalar that may be a number or a string.
func number(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

type kafkaTopic struct {
	Spec struct {
		TopicName  string         `json:"topicName"`
		Partitions int            `json:"partitions"`
		Replicas   int            `json:"replicas"`
		Config     map[string]any `json:"config"`
	} `json:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `json:"selector"`
		Ports    []struct {
			Port       int `json:"port"`
			TargetPort any `json:"targetPort"`
		} `json:"ports"`
	} `json:"spec"`
}

type kustomization struct {
	Resources             []string `json:"resources"`
	PatchesStrategicMerge []string `json:"patchesStrategicMerge"`
	Patches               []struct {
		Path string `json:"path"`
	} `json:"patches"`
}

func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := yaml.Unmarshal(o.raw, v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// parseDocs parses every YAML document of data.
func parseDocs(t *testing.T, file string, data []byte) []object {
	t.Helper()
	var out []object
	for _, doc := range docSeparator.Split(string(data), -1) {
		var probe map[string]any
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(probe) == 0 {
			continue
		}
		o := object{file: file, raw: []byte(doc)}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o.Kind == "" || o.APIVersion == "" {
			t.Errorf("%s: a document without kind or apiVersion", file)
		}
		out = append(out, o)
	}
	return out
}

// loadDir parses every YAML file of dir but its kustomization, and checks
// that the kustomization names every file and names no missing one.
func loadDir(t *testing.T, dir string) []object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	listed, patches := map[string]bool{}, map[string]bool{}
	for _, r := range k.Resources {
		st, err := os.Stat(filepath.Join(dir, r))
		switch {
		case err != nil:
			t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
		case st.IsDir():
			if _, err := os.Stat(filepath.Join(dir, r, "kustomization.yaml")); err != nil {
				t.Errorf("%s/kustomization.yaml lists %s, which has no kustomization.yaml", dir, r)
			}
		default:
			listed[r] = true
		}
	}
	for _, p := range slices.Concat(k.PatchesStrategicMerge, func() (ps []string) {
		for _, p := range k.Patches {
			if p.Path != "" {
				ps = append(ps, p.Path)
			}
		}
		return ps
	}()) {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s/kustomization.yaml patches with %s: %v", dir, p, err)
		}
		patches[p] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) || name == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		docs := parseDocs(t, filepath.Join(dir, name), data)
		if patches[name] {
			continue
		}
		if !listed[name] {
			t.Errorf("%s/kustomization.yaml does not list %s", dir, name)
		}
		objs = append(objs, docs...)
	}
	return objs
}

var (
	baseDir = filepath.Join(root, "deploy", "k8s", "base")
	devDir  = filepath.Join(root, "deploy", "k8s", "overlays", "dev")
)

// shopDeployment is a Deployment that runs `shop run`.
type shopDeployment struct {
	name       string
	d          deployment
	c          container
	components []string
}

// shopDeployments returns the Deployments of objs whose container runs
// `shop run`, and the env each one gets (explicit, envFrom ConfigMaps and
// Secrets of objs).
func shopDeployments(t *testing.T, objs []object) (out []shopDeployment, env map[string]map[string]bool) {
	t.Helper()
	keys := map[string]map[string]bool{} // "ConfigMap/name" → keys
	for _, o := range objs {
		if o.Kind != "ConfigMap" && o.Kind != "Secret" {
			continue
		}
		var v struct {
			Data       map[string]any `json:"data"`
			StringData map[string]any `json:"stringData"`
		}
		o.decode(t, &v)
		m := map[string]bool{}
		for k := range v.Data {
			m[k] = true
		}
		for k := range v.StringData {
			m[k] = true
		}
		keys[o.Kind+"/"+o.Metadata.Name] = m
	}
	env = map[string]map[string]bool{}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		var d deployment
		o.decode(t, &d)
		for _, c := range d.Spec.Template.Spec.Containers {
			args := slices.Concat(c.Command, c.Args)
			if len(c.Command) > 0 && strings.HasSuffix(c.Command[0], "shop") {
				args = args[1:]
			}
			vars := map[string]bool{}
			lookup := map[string]string{}
			for _, e := range c.Env {
				vars[e.Name], lookup[e.Name] = true, e.Value
				if e.ValueFrom != nil {
					for kind, r := range map[string]*keyRef{"Secret": e.ValueFrom.SecretKeyRef, "ConfigMap": e.ValueFrom.ConfigMapKeyRef} {
						if r != nil && !keys[kind+"/"+r.Name][r.Key] {
							t.Errorf("Deployment %s: %s comes from %s %s key %s, which does not exist", o.Metadata.Name, e.Name, kind, r.Name, r.Key)
						}
					}
				}
			}
			for _, ef := range c.EnvFrom {
				for kind, r := range map[string]*struct{ Name string }{"ConfigMap": ef.ConfigMapRef, "Secret": ef.SecretRef} {
					if r == nil {
						continue
					}
					m, ok := keys[kind+"/"+r.Name]
					if !ok {
						t.Errorf("Deployment %s: envFrom %s %s, which does not exist", o.Metadata.Name, kind, r.Name)
					}
					for k := range m {
						vars[k] = true
					}
				}
			}
			comps, isRun, err := componentsOf(args, func(k string) string { return lookup[k] })
			if err != nil {
				t.Errorf("Deployment %s: %v", o.Metadata.Name, err)
			}
			if !isRun {
				continue
			}
			out = append(out, shopDeployment{name: o.Metadata.Name, d: d, c: c, components: comps})
			env[o.Metadata.Name] = vars
		}
	}
	return out, env
}

func TestK8sKustomizationsListEveryFile(t *testing.T) {
	for _, dir := range []string{baseDir, devDir} {
		if objs := loadDir(t, dir); len(objs) == 0 {
			t.Errorf("%s: no objects", dir)
		}
	}
	// The dev overlay builds on the base.
	raw, err := os.ReadFile(filepath.Join(devDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("overlays/dev does not build on ../../base: resources %v", k.Resources)
	}
}

func TestK8sDeployments(t *testing.T) {
	objs := loadDir(t, baseDir)
	deps, env := shopDeployments(t, objs)
	if len(deps) == 0 {
		t.Fatal("deploy/k8s/base has no Deployment running `shop run`")
	}
	known := runEnv(t)
	groups := map[string][]string{}
	for _, sd := range deps {
		groups[sd.name] = sd.components
		c, d := sd.c, sd.d
		port := httpPort(slices.Concat(c.Command, c.Args), func(string) string { return "" })
		portOK := func(p any) bool {
			for _, cp := range c.Ports {
				if fmt.Sprint(p) == cp.Name || fmt.Sprint(p) == strconv.Itoa(cp.ContainerPort) {
					return strconv.Itoa(cp.ContainerPort) == port
				}
			}
			return false
		}
		// Liveness asks /livez (the process only), readiness /readyz
		// (what the instance's components need): an outage of a
		// dependency restarts no pod.
		for what, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			path := map[string]string{"readiness": "/readyz", "liveness": "/livez"}[what]
			switch {
			case p == nil:
				t.Errorf("Deployment %s: no %s probe", sd.name, what)
			case p.HTTPGet == nil || p.HTTPGet.Path != path:
				t.Errorf("Deployment %s: %s probe is not GET %s", sd.name, what, path)
			case !portOK(p.HTTPGet.Port):
				t.Errorf("Deployment %s: %s probe port %v is not the --http port %s", sd.name, what, p.HTTPGet.Port, port)
			}
		}
		for what, r := range map[string]map[string]any{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
			for _, res := range []string{"cpu", "memory"} {
				if r[res] == nil {
					t.Errorf("Deployment %s: no %s %s", sd.name, res, what)
				}
			}
		}
		// Prometheus scrapes the admin listener, whose address every pod
		// takes from the ConfigMap, on a container port of its own.
		admin := adminPort(slices.Concat(c.Command, c.Args), func(k string) string { return configEnv(t, objs)[k] })
		a := d.Spec.Template.Metadata.Annotations
		if admin == "" || a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != admin || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("Deployment %s: pod annotations %v; want prometheus.io/scrape \"true\", port %q (--admin-http), path /metrics", sd.name, a, admin)
		}
		hasAdmin := false
		for _, cp := range c.Ports {
			hasAdmin = hasAdmin || strconv.Itoa(cp.ContainerPort) == admin
		}
		if !hasAdmin {
			t.Errorf("Deployment %s: no container port for the admin listener %s", sd.name, admin)
		}
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("Deployment %s: selector %s=%s does not match its pods", sd.name, k, v)
			}
		}
		for _, v := range neededEnv(sd.components) {
			if !env[sd.name][v] {
				t.Errorf("Deployment %s (%v) lacks %s", sd.name, sd.components, v)
			}
		}
		for v := range env[sd.name] {
			if strings.HasPrefix(v, "SHOP_") && !known[v] {
				t.Errorf("Deployment %s gets %s, which no flag of `shop run` reads", sd.name, v)
			}
		}
		if slices.Contains(sd.components, app.PaymentsSepa) {
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
				got := "unset (Kubernetes' default, which an HPA or kubectl scale may change)"
				if d.Spec.Replicas != nil {
					got = strconv.Itoa(*d.Spec.Replicas)
				}
				t.Errorf("Deployment %s runs the SEPA caller: replicas must be 1 (single active), got %s", sd.name, got)
			}
			if d.Spec.Strategy.Type != "Recreate" {
				t.Errorf("Deployment %s runs the SEPA caller: strategy must be Recreate (no overlap while rolling), got %q", sd.name, d.Spec.Strategy.Type)
			}
		}
	}
	checkCoverage(t, "Deployment", groups)

	// Kubernetes groups the components as compose does.
	p := loadCompose(t)
	compose, _ := shopServices(t, p)
	canon := func(g map[string][]string) []string {
		var out []string
		for _, comps := range g {
			c := slices.Clone(comps)
			slices.Sort(c)
			out = append(out, strings.Join(c, ","))
		}
		slices.Sort(out)
		return out
	}
	if a, b := canon(groups), canon(compose); !slices.Equal(a, b) {
		t.Errorf("Deployments group the components as %v, compose as %v", a, b)
	}
}

func TestK8sGatewayService(t *testing.T) {
	objs := loadDir(t, baseDir)
	deps, _ := shopDeployments(t, objs)
	for _, sd := range deps {
		if !slices.Contains(sd.components, app.Gateway) {
			continue
		}
		found := false
		for _, o := range objs {
			if o.Kind != "Service" {
				continue
			}
			var s service
			o.decode(t, &s)
			match := len(s.Spec.Selector) > 0
			for k, v := range s.Spec.Selector {
				if sd.d.Spec.Template.Metadata.Labels[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			found = true
			for _, p := range s.Spec.Ports {
				ok := false
				for _, cp := range sd.c.Ports {
					if fmt.Sprint(p.TargetPort) == cp.Name || fmt.Sprint(p.TargetPort) == strconv.Itoa(cp.ContainerPort) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("Service %s: targetPort %v is no port of Deployment %s", o.Metadata.Name, p.TargetPort, sd.name)
				}
			}
		}
		if !found {
			t.Errorf("no Service selects the pods of Deployment %s (the gateway)", sd.name)
		}
	}
}

func TestK8sKafkaTopics(t *testing.T) {
	objs := loadDir(t, baseDir)
	want := expectedTopics()
	seen := map[string]bool{}
	clusters := map[string]bool{}
	for _, o := range objs {
		if o.Kind != "KafkaTopic" {
			continue
		}
		if o.APIVersion != "kafka.strimzi.io/v1beta2" {
			t.Errorf("KafkaTopic %s: apiVersion %s, want kafka.strimzi.io/v1beta2", o.Metadata.Name, o.APIVersion)
		}
		cluster := o.Metadata.Labels["strimzi.io/cluster"]
		if cluster == "" {
			t.Errorf("KafkaTopic %s has no strimzi.io/cluster label", o.Metadata.Name)
		}
		clusters[cluster] = true
		var kt kafkaTopic
		o.decode(t, &kt)
		name := kt.Spec.TopicName
		if name == "" {
			name = o.Metadata.Name
		}
		if _, ok := want[name]; !ok {
			t.Errorf("KafkaTopic %s is no topic of schemas.Topics() (nor its .dlq)", name)
			continue
		}
		if seen[name] {
			t.Errorf("two KafkaTopics for %s", name)
		}
		seen[name] = true
		if kt.Spec.Partitions != want[name] {
			t.Errorf("KafkaTopic %s: %d partitions, schemas.Topics() says %d", name, kt.Spec.Partitions, want[name])
		}
		if v := number(kt.Spec.Config["retention.ms"]); v != "-1" {
			t.Errorf("KafkaTopic %s: retention.ms %s, want -1", name, v)
		}
		if v, ok := kt.Spec.Config["retention.bytes"]; ok && number(v) != "-1" {
			t.Errorf("KafkaTopic %s: retention.bytes %v, want -1", name, v)
		}
	}
	for _, name := range sortedKeys(want) {
		if !seen[name] {
			t.Errorf("no KafkaTopic for %s (%d partitions)", name, want[name])
		}
	}
	if len(clusters) != 1 {
		t.Fatalf("KafkaTopics name %d Strimzi clusters %v; want one", len(clusters), sortedKeys(clusters))
	}
	// The shop's brokers are that cluster's bootstrap service.
	cluster := sortedKeys(clusters)[0]
	if b, ok := configEnv(t, objs)["SHOP_BROKERS"]; ok && !strings.HasPrefix(b, cluster+"-kafka-bootstrap") {
		t.Errorf("the ConfigMap's SHOP_BROKERS=%s is not the bootstrap of Strimzi cluster %s", b, cluster)
	}
	// The dev overlay's Kafka cluster is that one.
	found := false
	for _, o := range loadDir(t, devDir) {
		if o.Kind == "Kafka" {
			found = found || o.Metadata.Name == cluster
		}
	}
	if !found {
		t.Errorf("overlays/dev has no Strimzi Kafka named %s", cluster)
	}
}

// TestK8sEveryDeploymentHasProbesAndResources covers the dev overlay's
// infrastructure too.
func TestK8sEveryDeploymentHasProbesAndResources(t *testing.T) {
	for _, dir := range []string{baseDir, devDir} {
		for _, o := range loadDir(t, dir) {
			if o.Kind != "Deployment" {
				continue
			}
			var d deployment
			o.decode(t, &d)
			for _, c := range d.Spec.Template.Spec.Containers {
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					t.Errorf("%s: Deployment %s container %s lacks a readiness or liveness probe", o.file, o.Metadata.Name, c.Name)
				}
				if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 {
					t.Errorf("%s: Deployment %s container %s lacks resource requests or limits", o.file, o.Metadata.Name, c.Name)
				}
			}
		}
	}
}

// TestK8sKustomizeBuild builds the base and the dev overlay with kustomize
// (kubectl kustomize or kustomize build) when one is installed.
func TestK8sKustomizeBuild(t *testing.T) {
	build := func(dir string) ([]byte, error) {
		if p, err := exec.LookPath("kustomize"); err == nil {
			return exec.Command(p, "build", dir).Output()
		}
		if p, err := exec.LookPath("kubectl"); err == nil {
			return exec.Command(p, "kustomize", dir).Output()
		}
		t.Skip("neither kustomize nor kubectl is installed")
		return nil, nil
	}
	for _, dir := range []string{baseDir, devDir} {
		out, err := build(dir)
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("kustomize %s: %v\n%s", dir, err, stderr)
		}
		objs := parseDocs(t, dir+" (built)", out)
		if len(objs) == 0 {
			t.Fatalf("kustomize %s: no objects", dir)
		}
		deps, _ := shopDeployments(t, objs)
		groups := map[string][]string{}
		for _, sd := range deps {
			groups[sd.name] = sd.components
			if slices.Contains(sd.components, app.PaymentsSepa) &&
				(sd.d.Spec.Replicas == nil || *sd.d.Spec.Replicas != 1 || sd.d.Spec.Strategy.Type != "Recreate") {
				t.Errorf("kustomize %s: Deployment %s (SEPA caller) is not replicas 1 + Recreate", dir, sd.name)
			}
		}
		checkCoverage(t, "Deployment (built "+filepath.Base(dir)+")", groups)
		if dir == devDir {
			for _, o := range objs {
				var m struct {
					Metadata struct{ Namespace string } `json:"metadata"`
				}
				o.decode(t, &m)
				if o.Kind != "Namespace" && m.Metadata.Namespace != "shopstream-dev" {
					t.Errorf("overlays/dev: %s %s is in namespace %q", o.Kind, o.Metadata.Name, m.Metadata.Namespace)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Prometheus and Grafana

func TestPrometheusConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
			KubernetesSDConfigs []struct {
				Role string `json:"role"`
			} `json:"kubernetes_sd_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Action       string   `json:"action"`
				Regex        string   `json:"regex"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]bool{}
	podJob := false
	for _, j := range cfg.ScrapeConfigs {
		if j.JobName == "" {
			t.Error("prometheus.yml: a scrape config without job_name")
		}
		for _, s := range j.StaticConfigs {
			for _, tg := range s.Targets {
				targets[tg] = true
			}
		}
		for _, sd := range j.KubernetesSDConfigs {
			if sd.Role != "pod" {
				continue
			}
			for _, r := range j.RelabelConfigs {
				if r.Action == "keep" && slices.Contains(r.SourceLabels, "__meta_kubernetes_pod_annotation_prometheus_io_scrape") && r.Regex == "true" {
					podJob = true
				}
			}
		}
	}
	if !podJob {
		t.Error("prometheus.yml: no kubernetes_sd_configs job (role pod) keeping pods annotated prometheus.io/scrape: \"true\"")
	}
	p := loadCompose(t)
	groups, _ := shopServices(t, p)
	for name := range groups {
		tg := name + ":" + adminPort(p.Services[name].Command, composeEnv(p.Services[name]))
		if !targets[tg] {
			t.Errorf("prometheus.yml does not scrape compose service %s (%s)", name, tg)
		}
		delete(targets, tg)
	}
	delete(targets, "localhost:9090")
	for tg := range targets {
		t.Errorf("prometheus.yml scrapes %s, which is no compose component service", tg)
	}
}

// dashboardMetrics are the metric families the dashboard must show, with
// the label a panel must break them down by ("" for none).
var dashboardMetrics = []struct{ family, by string }{
	{"shop_http_request_duration_seconds", "route"},
	{"shop_command_duration_seconds", ""},
	{"shop_consumer_lag", "group"},
	{"shop_email_sent_total", ""},
	{"shop_email_group_quota_per_second", ""},
	{"shop_dlq_records", "topic"},
	{"shop_outbox_backlog", ""},
	{"shop_projector_checkpoint_age_seconds", ""},
	{"shop_circuit_breaker_state", "target"},
	{"shop_produce_bytes_total", ""},
	{"shop_fetch_bytes_total", ""},
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	dir := filepath.Join(root, "deploy", "grafana")
	raw, err := os.ReadFile(filepath.Join(dir, "dashboards", "shopstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string  `json:"uid"`
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("shopstream.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("shopstream.json: no uid or title")
	}
	// The provisioned datasource, which panels must name.
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `json:"datasources"`
	}
	dsRaw, err := os.ReadFile(filepath.Join(dir, "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(dsRaw, &ds); err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, d := range ds.Datasources {
		if d.Type == "prometheus" {
			uids[d.UID] = true
		}
	}
	if len(uids) == 0 {
		t.Fatal("grafana provisioning: no prometheus datasource")
	}
	var exprs []string
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("shopstream.json: panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if p.Datasource == nil || !uids[p.Datasource.UID] {
				t.Errorf("panel %q does not use the provisioned datasource %v", p.Title, sortedKeys(uids))
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	for _, m := range dashboardMetrics {
		re := regexp.MustCompile(`(^|[^a-zA-Z0-9_:])` + m.family + `(_bucket|_count|_sum)?([^a-zA-Z0-9_:]|$)`)
		byRe := regexp.MustCompile(`by \([^)]*\b` + m.by + `\b[^)]*\)`)
		found, brokenDown := false, m.by == ""
		for _, e := range exprs {
			if re.MatchString(e) {
				found = true
				brokenDown = brokenDown || byRe.MatchString(e)
			}
		}
		switch {
		case !found:
			t.Errorf("no dashboard panel queries %s", m.family)
		case !brokenDown:
			t.Errorf("no dashboard panel shows %s by %s", m.family, m.by)
		}
	}
	// The dashboard provider reads where compose mounts the dashboards.
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	provRaw, err := os.ReadFile(filepath.Join(dir, "provisioning", "dashboards", "shopstream.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(provRaw, &prov); err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "observability")
	mounts := map[string]string{}
	for _, v := range p.Services["grafana"].Volumes {
		mounts[v.Target] = v.Source
	}
	abs, _ := filepath.Abs(dir)
	if len(prov.Providers) == 0 {
		t.Fatal("grafana provisioning: no dashboard provider")
	}
	for _, pr := range prov.Providers {
		if mounts[pr.Options.Path] != filepath.Join(abs, "dashboards") {
			t.Errorf("the dashboard provider reads %s, where compose mounts %q, not deploy/grafana/dashboards", pr.Options.Path, mounts[pr.Options.Path])
		}
	}
	if mounts["/etc/grafana/provisioning"] != filepath.Join(abs, "provisioning") {
		t.Errorf("compose does not mount deploy/grafana/provisioning at /etc/grafana/provisioning")
	}
}

// exampleEnv is deploy/compose.env.example, the env file users copy to
// .env: every variable compose requires (${VAR:?…}) must be in it.
func exampleEnv(t *testing.T) types.Mapping {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "compose.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	env := types.Mapping{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// configEnv is the data of the ConfigMaps of objs: the SHOP_* settings
// every pod reads through envFrom.
func configEnv(t *testing.T, objs []object) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objs {
		if o.Kind != "ConfigMap" {
			continue
		}
		var cm struct {
			Data map[string]string `json:"data"`
		}
		o.decode(t, &cm)
		for k, v := range cm.Data {
			out[k] = v
		}
	}
	return out
}

// secretVars are the env file's secrets: compose requires each (`${X:?…}`)
// and deploy/compose.env.example lists each.
var (
	secretVars = []string{"SHOP_AUTH_TOKEN_SECRET", "SHOP_STAFF_KEYS", "POSTGRES_PASSWORD", "MONGO_PASSWORD", "KAFKA_ADMIN_PASSWORD", "KAFKA_SHOP_PASSWORD"}
	propKey    = regexp.MustCompile(`^[a-z][a-z0-9.-]*$`) // a server.properties key
)

// Compose runs PostgreSQL, MongoDB and Kafka with authentication, with
// secrets from the env file: no secret has a default, a missing one stops
// compose with its name; every connection of the shop carries its
// credentials; the broker has no listener without SASL but the
// controller's, bound to its own loopback, and authorizes with ACLs, the
// shop's principal getting its grants from the `acls` one-shot.
func TestComposeAuthenticatesEveryConnection(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	example := exampleEnv(t)
	for _, v := range secretVars {
		if strings.Contains(string(raw), "${"+v+":-") || strings.Contains(string(raw), "${"+v+"}") {
			t.Errorf("docker-compose.yml gives %s a default or takes it unchecked: it must be ${%s:?…}", v, v)
		}
		if !strings.Contains(string(raw), "${"+v+":?") {
			t.Errorf("docker-compose.yml never requires %s", v)
		}
		if example[v] == "" {
			t.Errorf("deploy/compose.env.example lacks %s", v)
		}
		// Without it, compose refuses to start, naming it.
		env := exampleEnv(t)
		delete(env, v)
		abs, _ := filepath.Abs(root)
		_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{WorkingDir: abs,
			ConfigFiles: []types.ConfigFile{{Filename: "docker-compose.yml", Content: raw}}, Environment: env},
			func(o *loader.Options) { o.SetProjectName("shopstream", true) })
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("compose without %s: %v, want an error naming it", v, err)
		}
	}

	p := loadCompose(t, "*")
	pw := func(v string) string { return example[v] }
	groups, _ := shopServices(t, p)
	for name, comps := range groups {
		env := composeEnv(p.Services[name])
		needs := needsOf(comps)
		if slices.Contains(needs, app.NeedKafka) && (env("SHOP_KAFKA_USER") != "shop" || env("SHOP_KAFKA_PASSWORD") != pw("KAFKA_SHOP_PASSWORD")) {
			t.Errorf("service %s: Kafka as %q with password %q, want shop with KAFKA_SHOP_PASSWORD", name, env("SHOP_KAFKA_USER"), env("SHOP_KAFKA_PASSWORD"))
		}
		if slices.Contains(needs, app.NeedMongo) {
			if u, err := url.Parse(env("SHOP_MONGO_URI")); err != nil || u.User == nil {
				t.Errorf("service %s: SHOP_MONGO_URI without credentials", name)
			} else if p, _ := u.User.Password(); p != pw("MONGO_PASSWORD") {
				t.Errorf("service %s: SHOP_MONGO_URI's password is not MONGO_PASSWORD", name)
			}
		}
		if slices.Contains(needs, app.NeedPostgres) {
			if u, err := url.Parse(env("SHOP_POSTGRES_URL")); err != nil || u.User == nil {
				t.Errorf("service %s: SHOP_POSTGRES_URL without credentials", name)
			} else if p, _ := u.User.Password(); p != pw("POSTGRES_PASSWORD") {
				t.Errorf("service %s: SHOP_POSTGRES_URL's password is not POSTGRES_PASSWORD", name)
			}
		}
	}
	if env := composeEnv(p.Services["mongo"]); env("MONGO_INITDB_ROOT_USERNAME") == "" || env("MONGO_INITDB_ROOT_PASSWORD") != pw("MONGO_PASSWORD") {
		t.Error("mongo runs without a root user (and so without --auth)")
	}
	if env := composeEnv(p.Services["postgres"]); env("POSTGRES_PASSWORD") != pw("POSTGRES_PASSWORD") || env("POSTGRES_HOST_AUTH_METHOD") != "scram-sha-256" {
		t.Errorf("postgres: password %q, host auth %q", env("POSTGRES_PASSWORD"), env("POSTGRES_HOST_AUTH_METHOD"))
	}
	if env := composeEnv(p.Services["schema-registry"]); env("SCHEMA_REGISTRY_KAFKASTORE_SECURITY_PROTOCOL") != "SASL_PLAINTEXT" ||
		!strings.Contains(env("SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG"), pw("KAFKA_ADMIN_PASSWORD")) {
		t.Error("the schema registry reaches Kafka without SASL as admin")
	}

	// The broker's configuration, as its command writes it.
	props := map[string]string{}
	for _, line := range strings.Split(strings.Join(p.Services["kafka"].Command, "\n"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && propKey.MatchString(k) {
			props[k] = v
		}
	}
	for l, proto := range func() map[string]string {
		m := map[string]string{}
		for _, kv := range strings.Split(props["listener.security.protocol.map"], ",") {
			k, v, _ := strings.Cut(kv, ":")
			m[k] = v
		}
		return m
	}() {
		if !strings.HasPrefix(proto, "SASL_") && l != "CONTROLLER" {
			t.Errorf("kafka: listener %s is %s, without authentication", l, proto)
		}
	}
	if !strings.Contains(props["listeners"], "CONTROLLER://127.0.0.1:") {
		t.Errorf("kafka: the controller listener (PLAINTEXT, ANONYMOUS super user) is not bound to loopback: %s", props["listeners"])
	}
	if props["authorizer.class.name"] == "" || !strings.Contains(props["super.users"], "User:admin") || strings.Contains(props["super.users"], "User:shop") {
		t.Errorf("kafka: authorizer %q, super users %q: want ACLs, with admin alone beside the broker", props["authorizer.class.name"], props["super.users"])
	}
	cmd := strings.Join(p.Services["kafka"].Command, "\n")
	for _, user := range []string{"admin", "shop"} {
		if !strings.Contains(cmd, "SCRAM-SHA-512=[name="+user+",password=$KAFKA_"+strings.ToUpper(user)+"_PASSWORD]") {
			t.Errorf("kafka: the storage is not formatted with the SCRAM user %s", user)
		}
	}
	acls := p.Services["acls"]
	if !slices.Equal(acls.Command, []string{"acls", "--components=all", "--principal=User:shop", "--apply"}) || composeEnv(acls)("SHOP_KAFKA_USER") != "admin" {
		t.Errorf("acls: %v as %s, want the grants of every component for User:shop, applied as admin", acls.Command, composeEnv(acls)("SHOP_KAFKA_USER"))
	}
}
