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
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `ebb: autoscaling and autoshutdown for Kubernetes, as a KEDA external scaler.

Usage:
  ebb serve --prometheus-url URL [flags]   serve KEDA's external scaler API
  ebb demo [flags]                         run ebb end to end on the embedded simulator
  ebb recommend [--prometheus-url URL | --source sim] [flags]   right-size workloads from their history
  ebb version                              print the version

Run 'ebb COMMAND -h' for a command's flags. Every flag can also be set as an
environment variable: --max-staleness is EBB_MAX_STALENESS.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "ebb:", err)
		os.Exit(1)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
}

// run dispatches a subcommand; each subcommand owns its flag set.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr, serveDeps{})
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "recommend":
		return runRecommend(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "ebb", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
