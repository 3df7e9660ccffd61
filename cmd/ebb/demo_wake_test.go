package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wakeRow is one row of the demo's wakes table.
type wakeRow struct {
	wakes        int
	held, failed float64
	delay, worst time.Duration
}

// demoWakes runs the demo for 6 simulated hours and returns its wakes
// table by workload.
func demoWakes(t *testing.T, args ...string) (map[string]wakeRow, string) {
	t.Helper()
	var out bytes.Buffer
	err := runDemo(context.Background(), append([]string{"--speed=0", "--duration=6h", "--table=off"}, args...), &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	_, table, ok := strings.Cut(s, "WAKE-DELAY")
	if !ok {
		t.Fatalf("no wakes table:\n%s", s)
	}
	rows := make(map[string]wakeRow)
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Fatalf("wakes row %q: want 6 columns", line)
		}
		var r wakeRow
		var err error
		r.wakes, err = strconv.Atoi(f[1])
		if err == nil {
			r.held, err = strconv.ParseFloat(f[2], 64)
		}
		if err == nil {
			r.failed, err = strconv.ParseFloat(f[3], 64)
		}
		if err == nil {
			r.delay, err = time.ParseDuration(f[4])
		}
		if err == nil {
			r.worst, err = time.ParseDuration(f[5])
		}
		if err != nil {
			t.Fatalf("wakes row %q: %v", line, err)
		}
		rows[f[0]] = r
	}
	return rows, s
}

// TestDemoActivator: with the activator, the requests that reach a
// workload at zero are held and all delivered, and the wake takes exactly
// the pod's start (the first held request wakes it at once); without it,
// they fail, and the wake also waits for the store to show the demand.
func TestDemoActivator(t *testing.T) {
	with, out := demoWakes(t)
	without, outWithout := demoWakes(t, "--activator=false")
	for _, want := range []string{"with the activator: requests that arrived at zero were held"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(outWithout, "without the activator (--activator=false)") {
		t.Errorf("output without the activator does not say so:\n%s", outWithout)
	}
	r, ok := with["ml/dev-llm"]
	if !ok || r.wakes == 0 {
		t.Fatalf("ml/dev-llm never woke from zero:\n%s", out)
	}
	for name, r := range with {
		if r.failed != 0 || r.held == 0 || r.delay != 30*time.Second || r.worst != 30*time.Second {
			t.Errorf("%s with the activator: %+v; want requests held, none failed, every wake 30s (--pod-start)", name, r)
		}
		w := without[name]
		if w.held != 0 || w.failed == 0 || w.delay <= 30*time.Second {
			t.Errorf("%s without the activator: %+v; want requests failed, none held, wakes longer than 30s", name, w)
		}
	}
}

func TestDemoPodStartFlag(t *testing.T) {
	err := runDemo(context.Background(), []string{"--pod-start=-1s"}, &bytes.Buffer{}, &bytes.Buffer{})
	if want := "--pod-start = -1s, must not be negative"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
