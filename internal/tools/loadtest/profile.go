package loadtest

import (
	"fmt"
	"time"
)

// Profiles a run can follow.
const (
	Steady      = "steady"
	BlackFriday = "blackfriday"
)

// Profile is the rate of requests a run asks for over time.
type Profile struct {
	Name     string        // Steady or BlackFriday
	BaseRPS  float64       // requests per second outside the spike
	SpikeX   float64       // BlackFriday: the spike rate is SpikeX × BaseRPS
	SpikeAt  time.Duration // BlackFriday: when the spike starts; 0: a third into the run
	SpikeFor time.Duration // BlackFriday: how long it lasts; 0: a third of the run
	Duration time.Duration
	Seed     int64
	// Mix is what the shoppers do: MixShoppers (""), every action in its
	// proportion, or MixOrders, orders alone.
	Mix string
}

// Mixes of requests.
const (
	MixShoppers = "shoppers"
	MixOrders   = "orders"
)

// Check fills the spike's defaults and names the first bad setting by its
// flag.
func (p *Profile) Check() error {
	switch {
	case p.Name != Steady && p.Name != BlackFriday:
		return fmt.Errorf("--profile %q: want %s or %s", p.Name, Steady, BlackFriday)
	case p.Duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", p.Duration)
	case p.BaseRPS <= 0:
		return fmt.Errorf("--base-rps %v: must be positive", p.BaseRPS)
	case p.Name == BlackFriday && p.SpikeX < 1:
		return fmt.Errorf("--spike-x %v: must be at least 1", p.SpikeX)
	case p.SpikeFor < 0 || p.SpikeAt < 0:
		return fmt.Errorf("--spike-for %v: must not be negative", p.SpikeFor)
	}
	if p.Name == Steady {
		p.SpikeX, p.SpikeAt, p.SpikeFor = 1, 0, 0
		return nil
	}
	if p.SpikeFor == 0 {
		p.SpikeFor = p.Duration / 3
	}
	if p.SpikeAt == 0 {
		p.SpikeAt = (p.Duration - p.SpikeFor) / 2
	}
	if p.SpikeAt+p.SpikeFor > p.Duration {
		return fmt.Errorf("--spike-for %v: the spike must end within --duration %v (it starts at %v)", p.SpikeFor, p.Duration, p.SpikeAt)
	}
	return nil
}

// Rate is the requests per second asked for at t since the start: the base
// rate, or SpikeX times it during the spike.
func (p Profile) Rate(t time.Duration) float64 {
	if p.Name == BlackFriday && t >= p.SpikeAt && t < p.SpikeAt+p.SpikeFor {
		return p.BaseRPS * p.SpikeX
	}
	return p.BaseRPS
}

// Arrivals is the number of requests due in [0, t): the integral of Rate.
func (p Profile) Arrivals(t time.Duration) float64 {
	t = min(t, p.Duration)
	n := p.BaseRPS * t.Seconds()
	if p.Name == BlackFriday && t > p.SpikeAt {
		in := min(t, p.SpikeAt+p.SpikeFor) - p.SpikeAt
		n += p.BaseRPS * (p.SpikeX - 1) * in.Seconds()
	}
	return n
}
