package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"shopstream/projectors/readmodels"
	"shopstream/projectors/replay"
)

// Job is a replay started from the console.
type job struct {
	ID       int
	Name     string
	Mode     string // "rebuild" or "verify"
	Started  time.Time
	Progress replay.Progress
	Done     bool
	Result   string
	Err      string
}

// Rate is the job's events/s so far.
func (j job) Rate() float64 {
	if s := j.Progress.Elapsed.Seconds(); s > 0 {
		return float64(j.Progress.Events) / s
	}
	return 0
}

// ETA is the time left to the head at the current rate.
func (j job) ETA() time.Duration {
	if r := j.Rate(); r > 0 && j.Progress.Lag > 0 {
		return time.Duration(float64(j.Progress.Lag) / r * float64(time.Second)).Round(time.Second)
	}
	return 0
}

// Percent is how far the job folded the log, 0 to 100.
func (j job) Percent() int {
	if total := j.Progress.Events + j.Progress.Lag; total > 0 {
		return int(j.Progress.Events * 100 / total)
	}
	return 0
}

// Replays is what the replays page shows.
type Replays struct {
	Names     []string
	Jobs      []job
	Available bool
}

func (c *Console) replays(*http.Request) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Replays{Names: readmodels.Names(), Available: c.cfg.Replay != nil}
	for i := len(c.jobs) - 1; i >= 0; i-- {
		out.Jobs = append(out.Jobs, *c.jobs[i])
	}
	return out, nil
}

func (c *Console) startReplay(w http.ResponseWriter, r *http.Request) {
	name, mode := r.PostFormValue("name"), r.PostFormValue("mode")
	j, ok := readmodels.Lookup(name)
	switch {
	case c.cfg.Replay == nil:
		http.Redirect(w, r, "/console/replays?msg="+urlQuery("this instance has no read models (no MongoDB)"), http.StatusSeeOther)
		return
	case !ok || mode != "rebuild" && mode != "verify":
		http.Redirect(w, r, "/console/replays?msg="+urlQuery("name a read model ("+strings.Join(readmodels.Names(), ", ")+") and rebuild or verify"), http.StatusSeeOther)
		return
	}
	c.mu.Lock()
	jb := &job{ID: len(c.jobs) + 1, Name: name, Mode: mode, Started: time.Now(), Progress: replay.Progress{Phase: replay.PhaseRebuilding}}
	c.jobs = append(c.jobs, jb)
	c.mu.Unlock()
	cfg := c.cfg.Replay()
	cfg.Logger = c.cfg.Logger
	if d, err := time.ParseDuration(r.PostFormValue("drop_after")); err == nil && d > 0 {
		cfg.DropAfter = d
	}
	cfg.OnProgress = func(p replay.Progress) {
		c.mu.Lock()
		jb.Progress = p
		c.mu.Unlock()
	}
	ctx := context.WithoutCancel(r.Context())
	go func() {
		var result string
		var err error
		if mode == "verify" {
			var v replay.Verification
			if v, err = j.Verify(ctx, cfg); err == nil {
				result = fmt.Sprintf("%d documents of %s compared with a replay of %d events: %d differences", v.Compared, v.Live, v.Events, v.Differences)
			}
		} else {
			var rep replay.Report
			if rep, err = j.Rebuild(ctx, cfg); err == nil {
				result = fmt.Sprintf("%d events into %s in %s (%.0f events/s), %d documents; readers switched from %s, which is dropped",
					rep.Events, rep.To, rep.Elapsed.Round(time.Millisecond), rep.Rate(), rep.Documents, rep.From)
			}
		}
		c.mu.Lock()
		jb.Done, jb.Result = true, result
		if err != nil {
			jb.Err = err.Error()
		}
		c.mu.Unlock()
		c.cfg.Logger.Info("console: replay", "name", name, "mode", mode, "result", result, "err", err)
	}()
	http.Redirect(w, r, "/console/replays", http.StatusSeeOther)
}
