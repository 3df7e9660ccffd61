package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Traffic counts HTTP requests and the bytes they move.
type Traffic struct {
	Requests atomic.Int64 // HTTP requests sent
	Sent     atomic.Int64 // bytes written to connections: request lines, headers, bodies
	Received atomic.Int64 // bytes read from connections: status lines, headers, bodies
	Body     atomic.Int64 // response body bytes read
}

// TrafficSnapshot is a Traffic's counts at one moment.
type TrafficSnapshot struct {
	Requests, Sent, Received, Body int64
}

// Snapshot returns the counts so far.
func (t *Traffic) Snapshot() TrafficSnapshot {
	return TrafficSnapshot{t.Requests.Load(), t.Sent.Load(), t.Received.Load(), t.Body.Load()}
}

// Sub returns the counts of s since earlier.
func (s TrafficSnapshot) Sub(earlier TrafficSnapshot) TrafficSnapshot {
	return TrafficSnapshot{s.Requests - earlier.Requests, s.Sent - earlier.Sent, s.Received - earlier.Received, s.Body - earlier.Body}
}

// Dial connects like a net.Dialer and counts the connection's bytes.
func (t *Traffic) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

// Wrap returns rt counting requests and response body bytes (after any
// transparent decompression).
func (t *Traffic) Wrap(rt http.RoundTripper) http.RoundTripper {
	return &countingRoundTripper{base: rt, t: t}
}

type countingRoundTripper struct {
	base http.RoundTripper
	t    *Traffic
}

func (rt *countingRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.t.Requests.Add(1)
	resp, err := rt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, t: rt.t}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	t *Traffic
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.t.Body.Add(int64(n))
	return n, err
}

type countingConn struct {
	net.Conn
	t *Traffic
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.t.Received.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.t.Sent.Add(int64(n))
	return n, err
}
