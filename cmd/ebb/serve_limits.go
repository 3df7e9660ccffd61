package main

import "time"

// The timeouts of ebb serve's HTTP server (/metrics, /healthz, /readyz):
// a client that sends its request headers slower than
// httpReadHeaderTimeout (a slow-loris client) is disconnected, and a
// keep-alive connection idle for httpIdleTimeout is closed, so that
// neither can hold a connection and its goroutine for ever. A Prometheus
// scrape sends its headers at once and scrapes more often than every 2m.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)
