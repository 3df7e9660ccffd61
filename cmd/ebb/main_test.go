package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestServeRequiresURL(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, &bytes.Buffer{}, &stderr)
	want := "--prometheus-url (or EBB_PROMETHEUS_URL) is required; to try ebb without a cluster or a Prometheus, run: ebb demo"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestServeFlagErrors(t *testing.T) {
	url := "--prometheus-url=http://127.0.0.1:1"
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{url, "--interval=10ms"}, nil, "--interval = 10ms, must be in [1s, 10m]"},
		{[]string{url, "--max-staleness=2s"}, nil, "--max-staleness = 2s, must be at least --interval (5s)"},
		{[]string{url, "--query-timeout=0s"}, nil, "--query-timeout = 0s, must be positive"},
		{[]string{url, "--query-concurrency=0"}, nil, "--query-concurrency = 0, must be in [1, 64]"},
		{[]string{url, "--default-window=5s"}, nil, "--default-window = 5s, must be in [10s, 1h]"},
		{[]string{url, "--basic-auth-password-file=/x"}, nil, "--basic-auth-password-file needs --basic-auth-user"},
		{[]string{url, "--header=NoColon"}, nil, `--header "NoColon": want 'Name: value'`},
		{[]string{url, "--log-level=loud"}, nil, `--log-level "loud": want debug, info, warn or error`},
		{[]string{url, "--tls-cert=/x"}, nil, "tls: --tls-cert and --tls-key go together"},
		{[]string{url, "extra"}, nil, `unexpected argument "extra"`},
		{[]string{url, "--idle-after=0s"}, nil, "--idle-after = 0s, must be in (0s, 720h]"},
		{[]string{url, "--min-uptime=-1s"}, nil, "--min-uptime = -1s, must be in [0s, 720h]"},
		{[]string{url, "--annotation-qps=0"}, nil, "--annotation-qps = 0 and --annotation-burst = 10, must be positive"},
		{[]string{url, "--kubeconfig=/nonexistent/kubeconfig"}, nil, "kubeconfig /nonexistent/kubeconfig: stat /nonexistent/kubeconfig: no such file or directory"},
		{nil, map[string]string{"EBB_PROMETHEUS_URL": "http://x", "EBB_INTERVAL": "soon"}, `EBB_INTERVAL="soon": parse error`},
		// The command line wins over the environment.
		{[]string{"--interval=2m"}, map[string]string{"EBB_PROMETHEUS_URL": "http://x", "EBB_INTERVAL": "5s"}, "--max-staleness = 1m0s, must be at least --interval (2m0s)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			err := runServe(context.Background(), tt.args, &stderr, serveDeps{getenv: func(k string) string { return tt.env[k] }})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"prometheus-url": "EBB_PROMETHEUS_URL",
		"max-staleness":  "EBB_MAX_STALENESS",
		"tls-client-ca":  "EBB_TLS_CLIENT_CA",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &bytes.Buffer{}); err != nil || out.String() != "ebb dev\n" {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), nil, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("no command: %v, want flag.ErrHelp", err)
	}
	if err := run(context.Background(), []string{"scale"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || err.Error() != `unknown command "scale"` {
		t.Errorf("unknown command: %v", err)
	}
}

func TestDemoRunsToCompletion(t *testing.T) {
	var out bytes.Buffer
	err := runDemo(context.Background(), []string{"--speed=0", "--duration=3h", "--table=off"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// bob-notebook is never used: after its cooldown it stays at zero.
	for _, want := range []string{"summary over 3h0m0s of simulated time", "notebooks/bob-notebook", "GPU-hours:", "store queries: 1440 batched queries for 8 workloads (2 shapes per tick)"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
}

func TestDemoStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := runDemo(ctx, []string{"--speed=1", "--table=off"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "interrupted after 0s of simulated time") {
		t.Errorf("got %q, want an interrupted summary", out.String())
	}
}

func TestDemoFlagErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--duration=0s":     "--duration = 0s, must be positive",
		"--speed=-1":        "--speed = -1, must not be negative",
		"--table=sometimes": `--table "sometimes": want auto, always or off`,
		"--start=yesterday": `--start "yesterday": want RFC 3339, e.g. 2026-11-16T08:00:00Z`,
		"--interval=10ms":   "--interval = 10ms, must be at least 1s",
	} {
		err := runDemo(context.Background(), []string{args}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", args, err, want)
		}
	}
}
