package activator

import (
	"context"
	"net"
	"net/http"
	"time"
)

// hangupPoll is how often a held HTTP/1.1 request whose body is unread
// checks whether its client went away.
const hangupPoll = 200 * time.Millisecond

type connKey struct{}

// withConn is the activator server's ConnContext: it lets a held request
// find its connection.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// hangup returns a channel that is closed when the client of r closes its
// connection, for the one case net/http does not tell through r's context:
// an HTTP/1.1 request whose body nobody has read yet. net/http watches the
// connection for a close only once the body is read to its end, and the
// activator must not read a held body (it streams it to the endpoint later
// and never holds it whole). So the connection is polled for the peer's
// hang-up (POLLRDHUP on Linux), which reads nothing. It returns nil, a
// channel that never closes, where the context already tells or the
// platform cannot poll. stop ends the polling.
func hangup(r *http.Request) (gone <-chan struct{}, stop func()) {
	if r.ProtoMajor != 1 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, func() {}
	}
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if c == nil || !canPollHangup {
		return nil, func() {}
	}
	ch, done := make(chan struct{}), make(chan struct{})
	go func() {
		t := time.NewTicker(hangupPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if peerClosed(c) {
					close(ch)
					return
				}
			}
		}
	}()
	return ch, func() { close(done) }
}
