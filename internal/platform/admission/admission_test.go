package admission_test

import (
	"context"
	"testing"
	"time"

	"shopstream/internal/platform/admission"
)

func TestGateAdmitsAtMostItsCapacity(t *testing.T) {
	g := admission.New(2)
	ctx := context.Background()
	if !g.Enter(ctx, 0) || !g.Enter(ctx, 0) {
		t.Fatal("a gate of 2 refused one of its first 2 callers")
	}
	if g.Enter(ctx, 0) {
		t.Fatal("a full gate admitted a 3rd caller without waiting")
	}
	if g.Enter(ctx, 10*time.Millisecond) {
		t.Fatal("a full gate admitted a 3rd caller after a wait during which no slot freed")
	}
	if n := g.InFlight(); n != 2 {
		t.Fatalf("in flight %d, want 2", n)
	}
	g.Leave()
	if !g.Enter(ctx, 0) {
		t.Fatal("a slot given back was not taken again")
	}
}

// A waiting caller takes the slot another gives back while it waits.
func TestGateWaiterTakesAFreedSlot(t *testing.T) {
	g := admission.New(1)
	ctx := context.Background()
	g.Enter(ctx, 0)
	admitted := make(chan bool)
	go func() { admitted <- g.Enter(ctx, time.Hour) }()
	g.Leave()
	if !<-admitted {
		t.Fatal("the waiter was refused although a slot freed")
	}
}

// A waiting caller whose context ends is refused at once.
func TestGateWaiterLeavesWithItsContext(t *testing.T) {
	g := admission.New(1)
	g.Enter(context.Background(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	admitted := make(chan bool)
	go func() { admitted <- g.Enter(ctx, time.Hour) }()
	cancel()
	if <-admitted {
		t.Fatal("a cancelled waiter was admitted to a full gate")
	}
	if c := admission.New(0).Cap(); c != 1 {
		t.Fatalf("capacity 0 became %d, want 1", c)
	}
}
