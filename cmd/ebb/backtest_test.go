package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbscale/ebb/backtest"
)

func TestBacktestCommand(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "bt.json")
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), []string{"backtest", "--history", "1d", "--step", "30s", "--format", "json", "--output", out},
		&stdout, &stderr, []string{"EBB_PREWAKE_BUDGET=3"})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res backtest.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	want := []string{"keda-5m", "knative", "kubeelasti-15m", "ebb-5m", "ebb-15m", "ebb-30m", "ebb-auto"}
	if strings.Join(res.Policies, ",") != strings.Join(want, ",") || len(res.Workloads) != 8 || res.Hours != 24 {
		t.Errorf("policies %v, %d workloads over %v hours; want %v, 8, 24", res.Policies, len(res.Workloads), res.Hours, want)
	}
}

func TestBacktestFlagErrors(t *testing.T) {
	t.Parallel()
	f := func(args []string, want string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), append([]string{"backtest"}, args...), &stdout, &stderr, nil)
		if code != exitUsage || !strings.HasPrefix(stderr.String(), "ebb: "+want+"\n") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", args, code, stderr.String(), want)
		}
	}
	f([]string{"--source", "nope"}, `--source "nope": want one of rhythms, sim, trace, stretched, prometheus`)
	f([]string{"--format", "csv"}, `--format "csv": want one of table, json, html`)
	f([]string{"--history", "soon"}, `--history "soon": want a duration such as 14d, 36h or 1d12h`)
	f([]string{"--warmup", "x"}, `--warmup "x": want a duration such as 14d, 36h or 1d12h`)
	f([]string{"--cold-start", "gpu=forever"}, `--cold-start "gpu=forever": the duration must be in [0s, 1h]`)
	f([]string{"--source", "prometheus"}, `--source prometheus needs --prometheus-url`)
	f([]string{"--ebb-cooldown", "2h"}, `--ebb-cooldown 2h0m0s: must be in [0s, 1h]`)
	f([]string{"--prewake-budget", "-1"}, `ebb auto: prewake budget = -1, must be >= 0`)
	f([]string{"--learn-min-history", "10m"}, `ebb auto: learn min history = 10m, must be in [1h, 168h]`)
}
