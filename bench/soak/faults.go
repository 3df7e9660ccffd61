package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// fault is what the store proxy does with ebb's queries.
type fault int32

const (
	pass    fault = iota // forward to the real Prometheus
	down                 // nothing listens: connection refused
	hang                 // accept, never answer
	http500              // HTTP 500 with Prometheus' error JSON
	garbage              // HTTP 200 whose JSON breaks off
	slow                 // answer after 9 s
)

func (f fault) String() string {
	return [...]string{"pass", "down", "hang", "500", "garbage", "slow 9s"}[f]
}

// storeProxy stands between both ebb replicas and the real Prometheus at
// a fixed loopback address, and injects one fault at a time.
type storeProxy struct {
	addr string
	mode atomic.Int32

	mu       sync.Mutex
	upstream *httputil.ReverseProxy
	srv      *http.Server
	release  chan struct{} // closed when a hang ends
}

func startStoreProxy(upstream string) (*storeProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &storeProxy{addr: l.Addr().String(), release: make(chan struct{})}
	if err := p.setUpstream(upstream); err != nil {
		return nil, err
	}
	p.serve(l)
	return p, nil
}

func (p *storeProxy) url() string { return "http://" + p.addr }

func (p *storeProxy) setUpstream(upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.upstream = httputil.NewSingleHostReverseProxy(u)
	p.mu.Unlock()
	return nil
}

func (p *storeProxy) serve(l net.Listener) {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(l)
}

// set switches to mode f.
func (p *storeProxy) set(f fault) {
	old := fault(p.mode.Swap(int32(f)))
	if old == hang {
		p.mu.Lock()
		close(p.release)
		p.release = make(chan struct{})
		p.mu.Unlock()
	}
	switch {
	case f == down:
		p.mu.Lock()
		srv := p.srv
		p.mu.Unlock()
		srv.Close()
	case old == down:
		for {
			l, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.serve(l)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (p *storeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch fault(p.mode.Load()) {
	case hang:
		p.mu.Lock()
		release := p.release
		p.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return
	case http500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"internal","error":"query processing would load too many samples into memory in query execution"}`))
		return
	case garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"destination_workload":"steady-api-0`))
		return
	case slow:
		t := time.NewTimer(9 * time.Second)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	p.mu.Lock()
	up := p.upstream
	p.mu.Unlock()
	up.ServeHTTP(w, r)
}
