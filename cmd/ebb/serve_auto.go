package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// autoConfig is serve's flags for idleAfter: auto: --idle-after (which
// takes "auto" as well as a duration), --learn-min-history and
// --prewake-budget.
type autoConfig struct {
	auto       bool
	minHistory time.Duration
	budget     int
}

// idleAfterValue is --idle-after: a duration, or "auto".
type idleAfterValue struct {
	d    *time.Duration
	auto *bool
}

func (v idleAfterValue) String() string {
	if v.auto != nil && *v.auto {
		return "auto"
	}
	if v.d == nil {
		return ""
	}
	return shutdown.FormatDuration(*v.d)
}

func (v idleAfterValue) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*v.auto, *v.d = true, shutdown.DefaultIdleAfter
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf(`want a duration such as 15m, or "auto"`)
	}
	*v.auto, *v.d = false, d
	return nil
}

// flags registers --idle-after into idleAfter, and the learning flags.
func (a *autoConfig) flags(fs *flag.FlagSet, idleAfter *time.Duration) {
	*idleAfter = shutdown.DefaultIdleAfter
	fs.Var(idleAfterValue{idleAfter, &a.auto}, "idle-after", `autoshutdown: a workload stays active this long after its last activity, unless its trigger (idleAfter) or annotation (ebb.dev/idle-after) says otherwise; "auto" learns it per workload, with pre-wake (falling back to 15m)`)
	fs.DurationVar(&a.minHistory, "learn-min-history", shutdown.DefaultLearnMinHistory, "idleAfter auto: history a workload needs before its idle period is learned; less falls back to the fixed idle-after")
	fs.IntVar(&a.budget, "prewake-budget", shutdown.DefaultPreWakeBudget, "idleAfter auto: pre-wakes a day not followed by demand before a workload backs off to the fixed idle-after; 0 turns pre-wake off")
}

// validate checks the learning flags.
func (a *autoConfig) validate() error {
	switch {
	case a.minHistory < time.Hour || a.minHistory > shutdown.DefaultLearnWindow:
		return fmt.Errorf("--learn-min-history = %s, must be in [1h, %s]", shutdown.FormatDuration(a.minHistory), shutdown.FormatDuration(shutdown.DefaultLearnWindow))
	case a.budget < 0 || a.budget > 1000:
		return fmt.Errorf("--prewake-budget = %d, must be in [0, 1000]", a.budget)
	}
	return nil
}

// policy returns the server's default policy with the learning settings:
// Auto when --idle-after is auto (every trigger and annotation without an
// idle-after of its own learns), and how every auto policy learns.
func (a *autoConfig) policy(p shutdown.Policy) shutdown.Policy {
	p.Auto = a.auto
	p.Learn = shutdown.DefaultLearnConfig()
	p.Learn.MinHistory, p.Learn.PreWakeBudget = a.minHistory, a.budget
	return p
}
