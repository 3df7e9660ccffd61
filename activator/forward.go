package activator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// forward is one request on its way upstream. It lives in the request's
// context, where Rewrite, the transport and the error handler find it.
type forward struct {
	a        *Activator
	target   Target
	workload queries.WorkloadKey
	m        *workloadMetrics
	h2       bool      // the client spoke HTTP/2: so does the upstream request
	start    time.Time // arrival
	deadline time.Time // the end of its hold; zero until computed
	addrs    []string  // ready addresses when it was let go
	episode  *episode  // set when it was held
	q        *queue    // set when the dispatcher released it
	released atomic.Bool
	body     trackedBody
}

type forwardKey struct{}

// release gives back f's concurrency slot, once. The transport's writer
// may call it as the handler does.
func (f *forward) release() {
	if f.q == nil || !f.released.CompareAndSwap(false, true) {
		return
	}
	f.a.mu.Lock()
	f.q.inflight--
	f.q.poke()
	f.a.mu.Unlock()
}

// pick returns the next of f.addrs, round robin across all requests.
func (f *forward) pick() string {
	return f.addrs[(f.a.rr.Add(1)-1)%uint32(len(f.addrs))]
}

// holdDeadline returns the end of f's hold.
func (f *forward) holdDeadline() time.Time {
	if f.deadline.IsZero() {
		f.deadline = f.start.Add(f.a.holdTimeout(f.workload))
	}
	return f.deadline
}

// forward proxies r to f's Service.
func (a *Activator) forward(w http.ResponseWriter, r *http.Request, f *forward) {
	defer f.release()
	a.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, f)))
}

// rewrite points the outbound request at one of the Service's ready
// addresses and sets the forwarding headers. The Host header stays the
// client's. httputil.ReverseProxy has already removed hop-by-hop headers
// (RFC 9110, section 7.6.1) and the forwarding headers; they are rebuilt
// from the inbound request here.
func rewrite(pr *httputil.ProxyRequest) {
	f := pr.In.Context().Value(forwardKey{}).(*forward)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = f.pick()
	setForwarded(pr.In, pr.Out.Header)
	if pr.Out.Body != nil && pr.Out.Body != http.NoBody {
		f.body.rc = pr.Out.Body
		pr.Out.Body = &f.body
	}
}

// setForwarded sets X-Forwarded-For and Forwarded on out, each extending
// the client's own, and keeps the client's X-Forwarded-Host and
// X-Forwarded-Proto (the activator is one more hop inside the cluster; an
// ingress in front knows the original scheme), setting them when absent.
func setForwarded(in *http.Request, out http.Header) {
	vals := make([]string, 4) // one allocation for the four headers' values
	set := func(i int, k, v string) {
		vals[i] = v
		out[k] = vals[i : i+1 : i+1]
	}
	host := in.Host
	if v := in.Header["X-Forwarded-Host"]; len(v) > 0 {
		out["X-Forwarded-Host"] = v
	} else {
		set(0, "X-Forwarded-Host", host)
	}
	if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 {
		out["X-Forwarded-Proto"] = v
	} else {
		set(1, "X-Forwarded-Proto", "http")
	}
	ip, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		return
	}
	xff := ip
	if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + ip
	}
	set(2, "X-Forwarded-For", xff)
	node := ip
	if strings.IndexByte(ip, ':') >= 0 {
		node = `"[` + ip + `]"`
	}
	if strings.ContainsAny(host, `"\`) {
		host = strings.ReplaceAll(strings.ReplaceAll(host, `\`, `\\`), `"`, `\"`)
	}
	fwd := "for=" + node + `;host="` + host + `";proto=http`
	if prior := in.Header["Forwarded"]; len(prior) > 0 {
		fwd = strings.Join(prior, ", ") + ", " + fwd
	}
	set(3, "Forwarded", fwd)
}

// trackedBody passes a request body through and remembers whether the
// upstream transport read any of it. Close is left to the server, so that a
// request whose connection was refused can go again.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *trackedBody) Close() error { return nil }

// transport sends requests to endpoints: HTTP/1.1 or h2c as the client
// spoke, again to another ready address when a connection was refused
// before anything was written.
type transport Activator

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := (*Activator)(t)
	f := req.Context().Value(forwardKey{}).(*forward)
	rt := a.h1
	if f.h2 {
		rt = a.h2c
	}
	out := req
	if f.episode != nil { // held: note the first byte out, free the slot once written
		ep := f.episode
		out = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteHeaders: func() { ep.firstByte(a.cfg.Clock.Now()) },
			WroteRequest: func(httptrace.WroteRequestInfo) { f.release() },
		}))
	}
	var tried []string
	for {
		resp, err := rt.RoundTrip(out)
		if err == nil {
			if f.h2 {
				grpcTrailersOnly(resp)
			}
			f.release()
			if f.episode != nil {
				f.m.forwardedHeld.Inc()
			} else {
				f.m.forwardedDirect.Inc()
			}
			return resp, nil
		}
		if !refused(err) || f.body.read.Load() {
			f.release()
			return nil, err
		}
		tried = append(tried, out.URL.Host)
		addr, err := a.another(out.Context(), f, tried)
		if err != nil {
			f.release()
			return nil, err
		}
		u := *req.URL
		u.Host = addr
		out = out.WithContext(out.Context())
		out.URL = &u
	}
}

// grpcTrailersOnly turns a gRPC "trailers-only" response (one HEADERS
// frame that ends the stream, carrying grpc-status: an error before any
// message) into headers and trailers. Go's HTTP/2 client hands such a frame
// over as response headers, and the proxy flushes headers at once, so its
// client would get grpc-status in a header frame that does not end the
// stream, where gRPC clients do not read it ("server closed the stream
// without sending trailers"). Every field but Content-Type was trailer
// metadata and goes back to the trailers.
func grpcTrailersOnly(res *http.Response) {
	if _, ok := res.Header["Grpc-Status"]; !ok || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/grpc") {
		return
	}
	if res.Trailer == nil {
		res.Trailer = make(http.Header, len(res.Header))
	}
	for k, v := range res.Header {
		if k != "Content-Type" {
			res.Trailer[k] = v
			delete(res.Header, k)
		}
	}
}

// another returns a ready address of f's Service not in tried, waiting
// for the addresses to change when there is none (then any of the new ones
// will do), until f's hold deadline.
func (a *Activator) another(ctx context.Context, f *forward, tried []string) (string, error) {
	wait := f.holdDeadline().Sub(a.cfg.Clock.Now())
	if wait <= 0 {
		return "", errHoldTimeout
	}
	timer := a.cfg.Clock.Timer(wait) // before Ready: a test that saw Ready may move a mock clock
	defer timer.Stop()
	t := f.target
	for {
		addrs, changed := a.cfg.Endpoints.Ready(t.Namespace, t.Service, t.Port)
		for range addrs {
			addr := addrs[(a.rr.Add(1)-1)%uint32(len(addrs))]
			if !contains(tried, addr) {
				return addr, nil
			}
		}
		select {
		case <-changed:
			tried = nil
		case <-timer.C:
			return "", errHoldTimeout
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// refused reports whether err is a TCP connect that was refused: nothing
// of the request went out.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}
