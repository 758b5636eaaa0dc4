package report

import "time"

// Ramp is what `shop loadtest --ramp` measured: the offered orders/s
// raised step by step until the latency or a stage's lag stopped holding,
// the highest rate that held (the shop's capacity) and the stage that gave
// way first, then a spike at SpikeX times that rate and a run at half of
// it for the accepted→visible latency.
type Ramp struct {
	// The ramp asked for: orders/s from StartRate by Step up to Max, each
	// step lasting StepFor; a step holds while the p99 of every request
	// answered in it is at most P99BoundMs and no stage falls behind.
	StartRate  float64       `json:"start_orders_per_s"`
	Step       float64       `json:"step_orders_per_s"`
	Max        float64       `json:"max_orders_per_s"`
	StepFor    time.Duration `json:"step_for"`
	P99BoundMs float64       `json:"p99_bound_ms"`
	// Mix is "shoppers" (the whole shopper mix, scaled so that orders come
	// at the offered rate) or "orders" (POST /orders alone).
	Mix string `json:"mix"`
	// RequestsPerOrder is how many requests the mix sends per order.
	RequestsPerOrder float64 `json:"requests_per_order"`

	Steps []RampStep `json:"steps"`

	// Sustainable is the highest offered orders/s whose step held (0: not
	// even the first one did).
	Sustainable float64 `json:"sustainable_orders_per_s"`
	// Stopped says why the ramp ended: "p99" (the gateway or PostgreSQL
	// over the bound), "lag" (the relay or a consumer group behind),
	// "shed" (the gateway shed, failed or timed out on over 1 % of its
	// answers), "loadgen" (the generator itself fell behind), or "max"
	// (every step held up to --ramp-max).
	Stopped string `json:"stopped"`
	// Bottleneck names the stage that gave way first: loadgen, postgres,
	// gateway, relay, or a consumer group; BottleneckReason says what it
	// did. When every step held (Stopped "max") it is the stage nearest
	// its limit at the last step.
	Bottleneck       string `json:"bottleneck"`
	BottleneckReason string `json:"bottleneck_reason"`

	Spike   *Spike      `json:"spike,omitempty"`
	Visible *Visibility `json:"visible,omitempty"`
	// Notes are what the run could not measure, and why.
	Notes []string `json:"notes,omitempty"`
}

// RampStep is one step of the ramp.
type RampStep struct {
	Offered    float64 `json:"offered_orders_per_s"`
	OfferedRPS float64 `json:"offered_requests_per_s"`
	From       float64 `json:"from_s"` // seconds since the start of the load
	To         float64 `json:"to_s"`

	Answers Answers `json:"answers"`
	// AcceptedOrders is POST /orders answered 2xx, per second of the step;
	// Commands every command (POST) answered 2xx per second.
	AcceptedOrders float64 `json:"accepted_orders_per_s"`
	Commands       float64 `json:"accepted_commands_per_s"`
	Answered       float64 `json:"answered_per_s"`
	// Latency of every request answered in the step, and of POST /orders.
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
	OrdersP99 float64 `json:"orders_p99_ms"`

	Stages []Stage `json:"stages"`
	Holds  bool    `json:"holds"`
	// Failed says what did not hold, one line each.
	Failed []string `json:"failed,omitempty"`
}

// Answers counts the answers of a phase by kind; 5xx and client
// timeouts are counted apart, as the spike must have no 500 and sheds
// must come as 429 or 503 with Retry-After, not as timeouts.
type Answers struct {
	Sent      int64 `json:"sent"`
	OK        int64 `json:"ok"`
	Shed429   int64 `json:"shed_429"`
	Shed503   int64 `json:"shed_503"`
	Status500 int64 `json:"status_500"`
	Other5xx  int64 `json:"other_5xx"`
	// Timeouts are requests the client gave up on (no answer within its
	// timeout); Transport other failures without an answer.
	Timeouts  int64 `json:"timeouts"`
	Transport int64 `json:"transport_errors"`
	Refused   int64 `json:"refused_4xx"`
	// ShedWithoutRetryAfter are 429 and 503 answers without Retry-After.
	ShedWithoutRetryAfter int64 `json:"shed_without_retry_after"`
	Late                  int64 `json:"late"`
}

// Stage is one stage of the pipeline during a step: its own rate and
// whether it kept up.
type Stage struct {
	// Name: "loadgen", "gateway", "postgres", "relay", or a consumer group
	// (shop.processor.saga.v1 …).
	Name string `json:"name"`
	// Rate is what the stage did per second, in Unit; Expected what it was
	// asked to do (offered, or what reached it).
	Rate     float64 `json:"rate"`
	Expected float64 `json:"expected"`
	Unit     string  `json:"unit"`
	// Backlog at the step's start and end (consumer lag, outbox rows);
	// -1 when unknown.
	BacklogStart int64 `json:"backlog_start"`
	BacklogEnd   int64 `json:"backlog_end"`
	// P99Ms is the stage's own p99 where it has one (postgres: command
	// handling from shop_command_duration_seconds).
	P99Ms float64 `json:"p99_ms,omitempty"`
	Holds bool    `json:"holds"`
	// Quota: the stage is rate-limited on purpose (the email group) and
	// left out of the bottleneck.
	Quota  bool   `json:"quota,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Severity orders failing stages of one kind (records/s of growth per
	// record/s of intake); 0 when the stage holds.
	Severity float64 `json:"severity,omitempty"`
}

// Spike is the load at SpikeX times the sustainable rate, and the drain
// of what it left behind.
type Spike struct {
	X       float64       `json:"x"`
	Offered float64       `json:"offered_orders_per_s"`
	For     time.Duration `json:"for"`
	// Took is how long it took to start every request the spike asked
	// for: more than For when the generator fell behind (Answers.Late),
	// Workers (its requests in flight at most) all waiting on the shop.
	Took    time.Duration `json:"took"`
	Workers int           `json:"workers"`
	// Answers are those of every request the spike asked for, late ones
	// included.
	Answers Answers `json:"answers"`
	P99     float64 `json:"p99_ms"`
	// AcceptedOrders were answered 2xx during the spike.
	AcceptedOrders int64 `json:"accepted_orders"`
	// BacklogOrders is how many of them were not yet done (confirmed or
	// cancelled in the read model; emails aside, as they are
	// quota-bound) when the spike ended; BacklogRecords the consumer lag
	// of each group then.
	BacklogOrders  int64            `json:"backlog_orders"`
	BacklogRecords map[string]int64 `json:"backlog_records"`
	// Drain is how long they took to be done with no group lagging
	// (email aside), against Bound = 1.2 × BacklogOrders ÷ capacity.
	Drain      time.Duration `json:"drain"`
	Drained    bool          `json:"drained"`
	Bound      time.Duration `json:"bound"`
	BoundHolds bool          `json:"bound_holds"`
	// No500 and Sheds: nothing answered 500; every shed came as 429 or
	// 503 with Retry-After.
	No500 bool `json:"no_500"`
	Sheds bool `json:"sheds_with_retry_after"`
}

// Visibility is the time from a command's acceptance (its 202 received)
// to the read model showing it (GET /orders/{id} answering 200), measured
// at half the sustainable rate.
type Visibility struct {
	Offered    float64       `json:"offered_orders_per_s"`
	For        time.Duration `json:"for"`
	Orders     int64         `json:"orders"`
	Seen       int64         `json:"seen"`
	NotSeen    int64         `json:"not_seen"` // not visible within the probe's patience
	P50        float64       `json:"p50_ms"`
	P99        float64       `json:"p99_ms"`
	Max        float64       `json:"max_ms"`
	PollMs     float64       `json:"poll_ms"`
	BoundMs    float64       `json:"bound_ms"`
	BoundHolds bool          `json:"bound_holds"`
	Answers    Answers       `json:"answers"`
}
