package main

import (
	"regexp"
	"strings"
	"testing"
)

// The infrastructure flags mean one thing in every subcommand: --brokers
// the Kafka the shop uses, --data-dir (default .shop) the data directory
// of the embedded infrastructure, --http only a listen address (a shop's
// URL is --target), and no second name for any of them.
func TestInfrastructureFlagsMeanOneThing(t *testing.T) {
	for _, args := range [][]string{{"dev"}, {"infra"}, {"run"}, {"migrate"}, {"topics"}, {"dlq", "list"}, {"replay", "products"}, {"loadtest"}} {
		_, help, _ := runShop(t, nil, append(args, "--help")...)
		flags := map[string]string{} // name -> its usage text, default included
		for _, m := range regexp.MustCompile("(?m)^  -(\\S+)(?: [^\n]*)?\n((?:    \t.*\n?)+)").FindAllStringSubmatch(help, -1) {
			flags[m[1]] = strings.Join(strings.Fields(m[2]), " ")
		}
		if len(flags) == 0 {
			t.Errorf("shop %s --help lists no flag:\n%s", strings.Join(args, " "), help)
			continue
		}
		cmd := "shop " + args[0]
		if u, ok := flags["brokers"]; ok && !strings.HasPrefix(u, brokersUsage) {
			t.Errorf("%s --brokers: %q, want it to start %q", cmd, u, brokersUsage)
		}
		if u, ok := flags["data-dir"]; !ok {
			t.Errorf("%s has no --data-dir", cmd)
		} else if !strings.HasPrefix(u, dataDirUsage) || !strings.Contains(u, `(default ".shop")`) {
			t.Errorf("%s --data-dir: %q, want %q with the default .shop", cmd, u, dataDirUsage)
		}
		// A backquoted word in a usage becomes the value's name in the
		// help ("-postgres-url shop dev"): a usage must not have one.
		for _, m := range regexp.MustCompile(`(?m)^  -(\S+) (\S+ \S.*)$`).FindAllStringSubmatch(help, -1) {
			t.Errorf("%s --%s: its help names the value %q: a backquote in its usage", cmd, m[1], m[2])
		}
		if _, ok := flags["http"]; ok && args[0] != "dev" && args[0] != "run" {
			t.Errorf("%s has --http: only shop dev and shop run listen; a shop's URL is --target", cmd)
		}
		for _, alias := range []string{"kafka-brokers", "kafka-brokers-url", "registry", "postgres"} {
			if _, ok := flags[alias]; ok {
				t.Errorf("%s has --%s, a second name of an infrastructure flag", cmd, alias)
			}
		}
	}
}
