// Package bench measures ebb against the per-object querying it replaces:
// a gRPC load harness that replays KEDA's call pattern against ebb's real
// server in a child process, and a side-by-side comparison of KEDA's
// Prometheus-scaler query pattern with ebb's batched collector against a real
// Prometheus. See README.md for how to run them and RESULTS.md for figures.
package bench
