package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// envName is the environment variable for a flag: max-staleness -> EBB_MAX_STALENESS.
func envName(flagName string) string {
	return "EBB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is a wrong command line or environment. main prints it with
// a pointer to the command's flags and exits with exitUsage.
type usageError struct {
	cmd string // serve, demo, recommend; "" for ebb itself
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage marks err, when not nil, as a usage error of cmd.
func usage(cmd string, err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{cmd: cmd, err: err}
}

// flagEnv is where parseFlags reads the environment and writes help and
// warnings.
type flagEnv struct {
	// getenv reads a variable; nil means the process's environment, and
	// environ then defaults to os.Environ.
	getenv func(string) string
	// environ lists the environment ("KEY=value") for the check of unknown
	// EBB_ variables; nil checks none.
	environ func() []string
	help    io.Writer // -h prints the command's help here
	warn    io.Writer // warnings about unknown EBB_ variables
}

// about is the paragraph each command's -h starts with.
var about = map[string]string{
	"serve": `ebb serve answers KEDA's external scaler API (gRPC) for the workloads
whose ScaledObjects name ebb: it queries a Prometheus-compatible store every
--interval, one batched query per signal shape, and answers from the last
good values; it scales idle workloads to zero (autoshutdown) and never
acts on data older than --max-staleness. /readyz says what is wrong while
the store does not answer; /metrics has ebb's own metrics.

Usage: ebb serve --prometheus-url URL [flags]`,
	"demo": `ebb demo runs ebb end to end on an embedded simulated cluster: ebb's
gRPC server, KEDA's generated client polling it, and workloads with bursts
of traffic. It needs no cluster and no Prometheus, and prints a live table
and a summary of replicas, cold starts and GPU-hours saved.

Usage: ebb demo [flags]`,
	"recommend": `ebb recommend reads the CPU, memory and GPU history of workloads from a
Prometheus-compatible store (kube-state-metrics, cAdvisor, dcgm-exporter),
from metrics-server, or from the embedded simulator, and prints right-sized
requests and limits with their cost. With --annotate it prints the
annotations, with --apply it sets them. An empty report exits 3.

Usage: ebb recommend [--prometheus-url URL | --source sim] [flags]`,
	"backtest": `ebb backtest replays a fleet's requests through scale-to-zero policies side
by side: KEDA's default (cooldown 300s, poll 30s), Knative (30s grace after
a 60s stable window), KubeElasti (900s), ebb with idleAfter 5m, 15m and 30m,
and ebb auto (learned keep-alive and pre-wake). It reports replica-hours,
GPU-hours, money, cold starts and the time requests waited for them, per
workload and in total, as a table, JSON, or HTML with a GPU-hours against
cold-starts chart. The fleet comes from the simulator, a trace, or the store.

Usage: ebb backtest [--source rhythms|sim|trace|stretched|prometheus] [flags]`,
}

// parseFlags parses args, then sets every flag the command line left unset
// from its EBB_ variable, as VictoriaMetrics' envflag does: the command line
// wins. An unknown EBB_ variable gets a warning naming the closest known
// one. Errors are one line, as a *usageError; -h prints the command's help
// and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, env flagEnv) error {
	if env.getenv == nil {
		env.getenv = os.Getenv
		if env.environ == nil {
			env.environ = os.Environ
		}
	}
	cmd := fs.Name()
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var bad *valueError
	restore := checkValues(fs, &bad)
	err := fs.Parse(args)
	restore()
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(fs, env.help)
		return flag.ErrHelp
	case bad != nil:
		return usage(cmd, fmt.Errorf("--%s %q: %s", bad.flag, bad.value, bad.want))
	case err != nil:
		return usage(cmd, parseError(err))
	case fs.NArg() > 0:
		return usage(cmd, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	known := map[string]bool{}
	var ferr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		known[name] = true
		if ferr != nil || set[f.Name] {
			return
		}
		v := env.getenv(name)
		if v == "" {
			return
		}
		if e := f.Value.Set(v); e != nil {
			ferr = usage(cmd, fmt.Errorf("%s=%q: %s", name, v, want(f.Value, e)))
		}
	})
	if ferr != nil {
		return ferr
	}
	if env.environ != nil && env.warn != nil {
		warnUnknown(env.warn, cmd, env.environ(), known)
	}
	return nil
}

// parseError shortens the flag package's errors.
func parseError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", strings.TrimPrefix(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value", strings.TrimPrefix(name, "-"))
	}
	return err
}

// valueError is a flag value from the command line that did not parse.
type valueError struct{ flag, value, want string }

// checkValues wraps every flag's value so that the first value that does not
// parse is recorded in *bad; restore puts the values back.
func checkValues(fs *flag.FlagSet, bad **valueError) (restore func()) {
	orig := map[*flag.Flag]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		orig[f] = f.Value
		c := checkedValue{Value: f.Value, name: f.Name, bad: bad}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			f.Value = checkedBool{c}
		} else {
			f.Value = c
		}
	})
	return func() {
		for f, v := range orig {
			f.Value = v
		}
	}
}

type checkedValue struct {
	flag.Value
	name string
	bad  **valueError
}

func (c checkedValue) Set(v string) error {
	err := c.Value.Set(v)
	if err != nil && *c.bad == nil {
		*c.bad = &valueError{flag: c.name, value: v, want: want(c.Value, err)}
	}
	return err
}

type checkedBool struct{ checkedValue }

func (checkedBool) IsBoolFlag() bool { return true }

// want says what a flag's value should look like, after it failed with err.
func want(v flag.Value, err error) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return err.Error()
	}
	switch g.Get().(type) {
	case time.Duration:
		return "want a duration such as 5s or 1m"
	case bool:
		return "want true or false"
	case int, int64, uint, uint64:
		return "want a whole number"
	case float64:
		return "want a number"
	}
	return err.Error()
}

// warnUnknown warns about each EBB_ variable of environ that is no flag of
// cmd, naming the closest known one.
func warnUnknown(w io.Writer, cmd string, environ []string, known map[string]bool) {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "EBB_") || known[name] || serviceLink.MatchString(name) {
			continue
		}
		best, bestD := "", len(name)/3+1 // at most a third of the name wrong
		for _, k := range names {
			if d := editDistance(name, k); d < bestD {
				best, bestD = k, d
			}
		}
		if best != "" {
			fmt.Fprintf(w, "ebb: warning: %s is not a setting of 'ebb %s'; did you mean %s?\n", name, cmd, best)
		} else {
			fmt.Fprintf(w, "ebb: warning: %s is not a setting of 'ebb %s'; run 'ebb %s -h' for the flags\n", name, cmd, cmd)
		}
	}
}

// serviceLink matches the variables Kubernetes sets in every pod for each
// Service of its namespace (enableServiceLinks): ebb's own Service "ebb"
// gives EBB_SERVICE_HOST, EBB_PORT_9090_TCP_ADDR and the like.
var serviceLink = regexp.MustCompile(`^EBB(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)$`)

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// printHelp writes the command's paragraph, then its flags.
func printHelp(fs *flag.FlagSet, w io.Writer) {
	if w == nil {
		w = os.Stdout
	}
	fmt.Fprintf(w, "%s\n\nFlags; each is also an environment variable (--max-staleness is\nEBB_MAX_STALENESS), and the command line wins over it:\n", about[fs.Name()])
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// stringList is a repeatable string flag; its environment variable sets one
// value.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
