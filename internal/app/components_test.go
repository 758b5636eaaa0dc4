package app

import (
	"slices"
	"testing"
)

// An instance connects the union of its components' needs, and only that:
// a projector-only instance opens no PostgreSQL, a relay-only one no
// registry or MongoDB.
func TestSelectedConnectsTheUnionOfNeeds(t *testing.T) {
	for _, tc := range []struct {
		components []string
		want       []Need
	}{
		{[]string{ProjectorProducts, ProjectorOrders}, []Need{NeedMongo, NeedKafka, NeedRegistry}},
		{[]string{OutboxRelay}, []Need{NeedPostgres, NeedKafka}},
		{[]string{Email}, []Need{NeedPostgres, NeedKafka, NeedRegistry, NeedSMTP}},
		{[]string{Saga, PaymentsSepa}, []Need{NeedPostgres, NeedKafka, NeedRegistry, NeedCardPSP, NeedSepaBank}},
		{Components(), needOrder},
	} {
		rows, got := selected(tc.components)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v need %v, want %v", tc.components, got, tc.want)
		}
		var names []string
		for _, r := range rows {
			names = append(names, r.name)
		}
		if len(names) != len(tc.components) {
			t.Errorf("%v built as %v", tc.components, names)
		}
	}
}

// What /readyz checks of a component is part of what it is built on, and
// every component is built on Kafka (its lag and dead letters are served
// by every instance).
func TestReadinessIsPartOfWhatAComponentNeeds(t *testing.T) {
	for _, c := range table() {
		for _, n := range c.ready {
			if !slices.Contains(c.needs, n) {
				t.Errorf("%s: /readyz checks %s, which it is not built on", c.name, n)
			}
		}
		if !slices.Contains(c.needs, NeedKafka) {
			t.Errorf("%s is not built on Kafka", c.name)
		}
	}
}

// The component table declares every consumer group a component runs:
// eight groups, none declared twice, each on the topics its processor
// consumes (w.consume refuses a group its row lacks, so a component that
// starts proves its row right).
func TestEveryGroupIsDeclaredOnce(t *testing.T) {
	seen := map[string]string{}
	for _, c := range table() {
		for g := range c.groups {
			if other, dup := seen[g]; dup {
				t.Errorf("group %s declared by %s and %s", g, other, c.name)
			}
			seen[g] = c.name
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d groups declared, want 10 (6 processors, 4 projectors): %v", len(seen), seen)
	}
}
