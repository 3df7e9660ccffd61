package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

func TestServeAutoFlags(t *testing.T) {
	t.Parallel()
	f := func(args []string, want string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), append([]string{"serve", "--prometheus-url", "http://127.0.0.1:1"}, args...), &stdout, &stderr, nil)
		if code != exitUsage || !strings.HasPrefix(stderr.String(), "ebb: "+want+"\n") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", args, code, stderr.String(), want)
		}
	}
	f([]string{"--idle-after", "soon"}, `--idle-after "soon": want a duration such as 15m, or "auto"`)
	f([]string{"--prewake-budget", "-1"}, `--prewake-budget = -1, must be in [0, 1000]`)
	f([]string{"--learn-min-history", "30m"}, `--learn-min-history = 30m, must be in [1h, 168h]`)

	// --idle-after auto makes the default policy learn, falling back to 15m.
	var c serveConfig
	fs := serveFlags(&c)
	if err := parseFlags(fs, []string{"--idle-after", "auto", "--prewake-budget", "2"}, flagEnv{getenv: func(string) string { return "" }}); err != nil {
		t.Fatal(err)
	}
	p := c.auto.policy(shutdown.Policy{IdleAfter: c.idleAfter, MinUptime: c.minUptime})
	if !p.Auto || p.IdleAfter != 15*time.Minute || p.Learn.PreWakeBudget != 2 || p.Learn.MinHistory != 48*time.Hour {
		t.Errorf("policy %+v, want auto, fixed 15m, budget 2, min history 48h", p)
	}
	// And so does EBB_IDLE_AFTER=auto.
	var e serveConfig
	if err := parseFlags(serveFlags(&e), nil, flagEnv{getenv: func(k string) string {
		if k == "EBB_IDLE_AFTER" {
			return "auto"
		}
		return ""
	}}); err != nil || !e.auto.auto {
		t.Errorf("EBB_IDLE_AFTER=auto: %v, auto %v; want auto", err, e.auto.auto)
	}
}
