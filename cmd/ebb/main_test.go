package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestServeRequiresURL(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, &bytes.Buffer{}, &stderr, nil)
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
		{[]string{url, "--max-workloads=0"}, nil, "--max-workloads = 0, must be at least 1"},
		{[]string{url, "--basic-auth-password-file=/x"}, nil, "--basic-auth-password-file needs --basic-auth-user"},
		{[]string{url, "--header=NoColon"}, nil, `--header "NoColon": want 'Name: value'`},
		{[]string{url, "--log-level=loud"}, nil, `--log-level "loud": want debug, info, warn or error`},
		{[]string{url, "--tls-cert=/x"}, nil, "tls: --tls-cert and --tls-key go together"},
		{[]string{url, "extra"}, nil, `unexpected argument "extra"`},
		{[]string{url, "--idle-after=0s"}, nil, "--idle-after = 0s, must be in (0s, 720h]"},
		{[]string{url, "--min-uptime=-1s"}, nil, "--min-uptime = -1s, must be in [0s, 720h]"},
		{[]string{url, "--annotation-qps=0"}, nil, "--annotation-qps = 0 and --annotation-burst = 10, must be positive"},
		{[]string{url, "--kubeconfig=/nonexistent/kubeconfig"}, nil, "kubeconfig /nonexistent/kubeconfig: stat /nonexistent/kubeconfig: no such file or directory"},
		{nil, map[string]string{"EBB_PROMETHEUS_URL": "http://x", "EBB_INTERVAL": "soon"}, `EBB_INTERVAL="soon": want a duration such as 5s or 1m`},
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

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := runMain(context.Background(), []string{"version"}, &out, &bytes.Buffer{}, nil); code != 0 || out.String() != "ebb dev\n" {
		t.Errorf("version: %q, exit %d", out.String(), code)
	}
}

// TestCommandLine checks what ebb prints on stderr, and its exit code, for
// wrong command lines and environments.
func TestCommandLine(t *testing.T) {
	url := "--prometheus-url=http://127.0.0.1:1"
	serveHint := "run 'ebb serve -h' for the flags\n"
	prices := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(prices, []byte(`{"gpuHour":{"H100":6.5}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		env    []string
		stderr string
		code   int
	}{
		{"no command", nil, nil, usageText, 2},
		{"unknown command", []string{"scale"}, nil, "ebb: unknown command \"scale\"\nrun 'ebb help' for the commands\n", 2},
		{"unknown flag", []string{"serve", url, "--bogus"}, nil, "ebb: unknown flag --bogus\n" + serveHint, 2},
		{"bad duration", []string{"serve", url, "--interval=5"}, nil, "ebb: --interval \"5\": want a duration such as 5s or 1m\n" + serveHint, 2},
		{"bad duration in the environment", []string{"serve", url}, []string{"EBB_INTERVAL=5"}, "ebb: EBB_INTERVAL=\"5\": want a duration such as 5s or 1m\n" + serveHint, 2},
		{"bad number", []string{"demo", "--speed=fast"}, nil, "ebb: --speed \"fast\": want a number\nrun 'ebb demo -h' for the flags\n", 2},
		{"bad whole number", []string{"demo", "--seed=1.5"}, nil, "ebb: --seed \"1.5\": want a whole number\nrun 'ebb demo -h' for the flags\n", 2},
		{"bad bool", []string{"recommend", "--source=sim", "--annotate=maybe"}, nil, "ebb: --annotate \"maybe\": want true or false\nrun 'ebb recommend -h' for the flags\n", 2},
		{"flag without value", []string{"demo", "--speed"}, nil, "ebb: --speed needs a value\nrun 'ebb demo -h' for the flags\n", 2},
		{"invalid value", []string{"serve", url, "--interval=10ms"}, nil, "ebb: --interval = 10ms, must be in [1s, 10m]\n" + serveHint, 2},
		{"unreadable token file", []string{"serve", url, "--bearer-token-file=/nonexistent"}, nil,
			"ebb: --bearer-token-file: open /nonexistent: no such file or directory\n" + serveHint, 2},
		{"unreadable CA file", []string{"recommend", url, "--ca-file=/nonexistent/ca.pem"}, nil,
			"ebb: --ca-file: open /nonexistent/ca.pem: no such file or directory\nrun 'ebb recommend -h' for the flags\n", 2},
		{"serve: URL without a scheme", []string{"serve", "--prometheus-url=127.0.0.1:19099"}, nil,
			"ebb: --prometheus-url \"127.0.0.1:19099\": want http(s)://host[:port][/path], such as http://prometheus:9090\n" + serveHint, 2},
		{"recommend: URL without a scheme", []string{"recommend", "--prometheus-url", "127.0.0.1:19099"}, nil,
			"ebb: --prometheus-url \"127.0.0.1:19099\": want http(s)://host[:port][/path], such as http://prometheus:9090\nrun 'ebb recommend -h' for the flags\n", 2},
		{"unknown GPU class in --prices", []string{"recommend", "--source=sim", "--prices=" + prices}, nil,
			"ebb: --prices " + prices + ": prices: gpuHour: unknown GPU class \"H100\"; known: A100-40GB, A100-80GB, A10G, H100-80GB, L4, T4, V100, and default for any other GPU\n" +
				"run 'ebb recommend -h' for the flags\n", 2},
		// The command line wins: EBB_INTERVAL is not even parsed.
		{"command line over environment", []string{"serve", "--interval=2m"}, []string{"EBB_PROMETHEUS_URL=http://x", "EBB_INTERVAL=soon"},
			"ebb: --max-staleness = 1m0s, must be at least --interval (2m0s)\n" + serveHint, 2},
		{"misspelt variable", []string{"serve"}, []string{"EBB_PROMETHEUS_ULR=http://x", "HOME=/root"},
			"ebb: warning: EBB_PROMETHEUS_ULR is not a setting of 'ebb serve'; did you mean EBB_PROMETHEUS_URL?\n" +
				"ebb: --prometheus-url (or EBB_PROMETHEUS_URL) is required; to try ebb without a cluster or a Prometheus, run: ebb demo\n" + serveHint, 2},
		// What Kubernetes sets for the Service "ebb" is no setting, and no warning.
		{"service links", []string{"demo", "--duration=0s"}, []string{"EBB_SERVICE_HOST=10.0.0.1", "EBB_SERVICE_PORT=9090", "EBB_SERVICE_PORT_GRPC=9090",
			"EBB_PORT=tcp://10.0.0.1:9090", "EBB_PORT_9090_TCP=tcp://10.0.0.1:9090", "EBB_PORT_9090_TCP_ADDR=10.0.0.1", "EBB_ACTIVATOR_SERVICE_HOST=10.0.0.2"},
			"ebb: --duration = 0s, must be positive\nrun 'ebb demo -h' for the flags\n", 2},
		{"unknown variable", []string{"demo", "--duration=0s"}, []string{"EBB_COLOUR=always"},
			"ebb: warning: EBB_COLOUR is not a setting of 'ebb demo'; run 'ebb demo -h' for the flags\n" +
				"ebb: --duration = 0s, must be positive\nrun 'ebb demo -h' for the flags\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), tt.args, &stdout, &stderr, tt.env)
			if code != tt.code || stderr.String() != tt.stderr {
				t.Errorf("ebb %s: exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", strings.Join(tt.args, " "), code, &stderr, tt.code, tt.stderr)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q, want nothing", &stdout)
			}
		})
	}
}

// TestHelp checks that -h on each command exits 0 and starts with what
// the command does.
func TestHelp(t *testing.T) {
	tests := []struct {
		args  []string
		start string
	}{
		{[]string{"serve", "-h"}, "ebb serve answers KEDA's external scaler API (gRPC) for the workloads\n"},
		{[]string{"demo", "--help"}, "ebb demo runs ebb end to end on an embedded simulated cluster: ebb's\n"},
		{[]string{"recommend", "-h"}, "ebb recommend reads the CPU, memory and GPU history of workloads from a\n"},
		{[]string{"help"}, "ebb: autoscaling and autoshutdown for Kubernetes, as a KEDA external scaler.\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), tt.args, &stdout, &stderr, nil)
			if code != 0 || !strings.HasPrefix(stdout.String(), tt.start) || stderr.Len() > 0 {
				t.Errorf("exit %d, stdout:\n%s\nstderr: %q\nwant exit 0, stdout starting %q, no stderr", code, &stdout, &stderr, tt.start)
			}
			if len(tt.args) > 1 && !strings.Contains(stdout.String(), "\n  -") {
				t.Errorf("help lists no flags:\n%s", &stdout)
			}
		})
	}
}

// TestCommandLineWinsOverEnvironment checks repeatable flags: a variable
// fills a flag only when the command line left it unset.
func TestCommandLineWinsOverEnvironment(t *testing.T) {
	env := map[string]string{"EBB_HEADER": "X-Scope-OrgID: env", "EBB_NAMESPACE": "ml", "EBB_BASIC_AUTH_USER": "env"}
	getenv := func(k string) string { return env[k] }
	var s serveConfig
	if err := parseFlags(serveFlags(&s), []string{"--header=X-Scope-OrgID: flag"}, flagEnv{getenv: getenv}); err != nil {
		t.Fatal(err)
	}
	if got := []string(s.store.headers); len(got) != 1 || got[0] != "X-Scope-OrgID: flag" || s.store.basicAuthUser != "env" {
		t.Errorf("serve: headers %q, basic-auth user %q; want [X-Scope-OrgID: flag] and env", got, s.store.basicAuthUser)
	}
	var r recommendConfig
	if err := parseFlags(recommendFlags(&r), []string{"--namespace=shop"}, flagEnv{getenv: getenv}); err != nil {
		t.Fatal(err)
	}
	if got := []string(r.namespaces); len(got) != 1 || got[0] != "shop" || r.store.headers[0] != "X-Scope-OrgID: env" {
		t.Errorf("recommend: namespaces %q, headers %q; want [shop] and [X-Scope-OrgID: env]", got, r.store.headers)
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
	for _, want := range []string{"summary over 3h0m0s of simulated time", "notebooks/bob-notebook", "GPU-hours:", "store queries: 2880 batched queries for 11 workloads (4 shapes per tick)", "pre-wake (idleAfter auto): woken ahead of the workload's rhythm\n  notebooks/carol-notebook: 2 pre-wakes, 2 cold starts hidden, 0 wasted\n",
		"model servers: the same trace on the server's signal and on GPU utilization", "\nml/llm-chat              kvcache ", "\nml/llm-chat-gpu          gpu "} {
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

// TestDemoFitsTheTerminal runs the demo into a pipe at 80 and 100 columns:
// no escape codes even with --table always, a table every --table-every,
// every line within the width, no -0.00, and notes that say why a workload
// is inactive.
func TestDemoFitsTheTerminal(t *testing.T) {
	for _, width := range []int{80, 100} {
		t.Run(strconv.Itoa(width), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), []string{"demo", "--speed=0", "--duration=3h", "--table=always", "--table-every=30m",
				"--width=" + strconv.Itoa(width)}, &stdout, &stderr, nil)
			out := stdout.String()
			if code != 0 || stderr.Len() > 0 {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, &stderr)
			}
			if strings.Contains(out, "\033") {
				t.Error("escape codes in output that is no terminal")
			}
			if n := strings.Count(out, "\nsimulated 2026-11-16 "); n != 6 {
				t.Errorf("%d tables in 3h every 30m, want 6", n)
			}
			for line := range strings.Lines(out) {
				if len(strings.TrimSuffix(line, "\n")) > width {
					t.Errorf("line of %d columns, want at most %d: %q", len(line)-1, width, line)
				}
			}
			if strings.Contains(out, "-0.00") {
				t.Error("output holds -0.00")
			}
			for _, want := range []string{
				"\n3h0m0s of simulated time, as fast as possible\n",
				map[int]string{
					80:  "\nnotebooks/bob-notebook   requests     0.00      1    0/1    false  never active\n",
					100: "\nnotebooks/bob-notebook   requests     0.00      1    0/1    false  never active: idle at once\n",
				}[width],
				"\nnotebooks/alice-notebook requests     0.00      1    0/1    false  idle 25m\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestDemoValue(t *testing.T) {
	for v, want := range map[float64]string{-0.001: "0.00", 0: "0.00", 1.234: "1.23", -2: "-2.00"} {
		if got := demoValue(v); got != want {
			t.Errorf("demoValue(%v) = %q, want %q", v, got, want)
		}
	}
}
