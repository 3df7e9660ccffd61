// Package storetest runs a real Prometheus and a real VictoriaMetrics on
// loopback ports for tests, loaded with fixed, timestamped history.
//
// Tests of one package usually share one server of each kind: start them
// lazily with LaunchPrometheus and LaunchVictoriaMetrics, stop them after
// m.Run in TestMain, and hand the launch error to Require in each test, which
// skips loudly when a binary is missing (and fails under CI=true). A test that
// needs a server of its own (to stop it, say) uses StartPrometheus or
// StartVictoriaMetrics, which clean up after the test.
package storetest
