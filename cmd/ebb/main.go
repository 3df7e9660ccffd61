// Command ebb is the autoscaling and autoshutdown brain for Kubernetes: a
// KEDA external scaler fed by batched Prometheus queries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usageText = `ebb: autoscaling and autoshutdown for Kubernetes, as a KEDA external scaler.

Usage:
  ebb serve --prometheus-url URL [flags]   serve KEDA's external scaler API
  ebb demo [flags]                         run ebb end to end on the embedded simulator
  ebb recommend [--prometheus-url URL | --source sim] [flags]   right-size workloads from their history
  ebb backtest [--source rhythms|sim|trace|stretched|prometheus] [flags]   compare scale-to-zero policies on a fleet's history
  ebb version                              print the version

Run 'ebb COMMAND -h' for a command's flags. Every flag can also be set as an
environment variable: --max-staleness is EBB_MAX_STALENESS; the command line
wins over the environment.

Exit codes: 0 done, 1 failed, 2 wrong flags or environment, 3 'ebb recommend'
found nothing to recommend.
`

// The exit codes of ebb.
const (
	exitOK          = 0
	exitFailed      = 1 // the command failed
	exitUsage       = 2 // wrong command line or environment
	exitEmptyReport = 3 // ebb recommend had no workload to report on
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// runMain runs a command with environ as its environment, prints its error
// and returns the exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	err := run(ctx, args, stdout, stderr, environ)
	var ue *usageError
	var empty *emptyReportError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errNoCommand):
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "ebb:", err)
		if ue.cmd == "" {
			fmt.Fprintln(stderr, "run 'ebb help' for the commands")
		} else {
			fmt.Fprintf(stderr, "run 'ebb %s -h' for the flags\n", ue.cmd)
		}
		return exitUsage
	case errors.As(err, &empty):
		fmt.Fprintln(stderr, "ebb:", err)
		return exitEmptyReport
	}
	fmt.Fprintln(stderr, "ebb:", err)
	return exitFailed
}

// errNoCommand is ebb run without a command: the usage is printed.
var errNoCommand = errors.New("no command")

// run dispatches a subcommand; each subcommand owns its flag set.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return errNoCommand
	}
	env := flagEnv{getenv: lookup(environ), environ: func() []string { return environ }, help: stdout, warn: stderr}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr, serveDeps{getenv: env.getenv, environ: env.environ, stdout: stdout})
	case "demo":
		return demo(ctx, args[1:], stdout, stderr, env)
	case "recommend":
		return recommend(ctx, args[1:], stdout, stderr, recommendDeps{getenv: env.getenv, environ: env.environ})
	case "backtest":
		return runBacktest(ctx, args[1:], stdout, backtestDeps{now: time.Now, env: env})
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "ebb", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	return usage("", fmt.Errorf("unknown command %q", args[0]))
}

// lookup reads variables from environ, a list of "KEY=value"; the last
// one of a name wins, as in os.Getenv.
func lookup(environ []string) func(string) string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}
