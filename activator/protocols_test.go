package activator

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// h2cClient returns a client that speaks HTTP/2 with prior knowledge.
func h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestProtocolsAndTrailers: HTTP/1.1 goes upstream as HTTP/1.1 and h2c as
// HTTP/2; announced trailers arrive intact either way.
func TestProtocolsAndTrailers(t *testing.T) {
	e := newEnv(t, nil)
	b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s", r.Proto, body)
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "sum-"+string(body))
		w.Header().Set(http.TrailerPrefix+"X-Unannounced", "late")
	})
	e.eps.SetReady("shop", "web", b.addr)
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  string
	}{
		{"http1", e.client, "HTTP/1.1"},
		{"h2c", h2cClient(t), "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Do(e.request(context.Background(), "POST", "web.shop", "/", strings.NewReader(tc.name)))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != tc.proto {
				t.Errorf("client got %s, want %s", resp.Proto, tc.proto)
			}
			if want := tc.proto + " " + tc.name; string(body) != want {
				t.Errorf("body %q, want %q (the upstream protocol)", body, want)
			}
			if got := resp.Trailer.Get("X-Checksum"); got != "sum-"+tc.name {
				t.Errorf("trailer X-Checksum = %q, want %q", got, "sum-"+tc.name)
			}
			if got := resp.Trailer.Get("X-Unannounced"); got != "late" {
				t.Errorf("trailer X-Unannounced = %q, want late", got)
			}
		})
	}
}

// trailerServer sets a trailer on every unary call.
func trailerServer(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-ebb-trailer", "intact"))
	return handler(ctx, req)
}

// TestGRPC: a real grpc-go health server behind the activator, first held
// while the pod is down: unary calls with their status and trailers, and a
// server stream whose messages arrive as they are sent.
func TestGRPC(t *testing.T) {
	e := newEnv(t, nil)
	hs := health.NewServer()
	hs.SetServingStatus("ebb.test", healthpb.HealthCheckResponse_SERVING)
	gs := grpc.NewServer(grpc.UnaryInterceptor(trailerServer))
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient("passthrough:///"+e.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("web.shop.svc.cluster.local:9090"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Held first: the pod is not up.
	type result struct {
		resp    *healthpb.HealthCheckResponse
		trailer metadata.MD
		err     error
	}
	first := make(chan result)
	go func() {
		var md metadata.MD
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ebb.test"}, grpc.Trailer(&md))
		first <- result{resp, md, err}
	}()
	e.waitHeld(shopWeb, 1)
	go gs.Serve(ln)
	e.eps.SetReady("shop", "web", ln.Addr().String())
	r := <-first
	if r.err != nil || r.resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("held Check = %v, %v; want SERVING", r.resp, r.err)
	}
	if got := r.trailer.Get("x-ebb-trailer"); len(got) != 1 || got[0] != "intact" {
		t.Errorf("trailer x-ebb-trailer = %q, want [intact]", got)
	}

	// A status that travels in the trailers.
	var md metadata.MD
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}, grpc.Trailer(&md))
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "unknown service" {
		t.Errorf("Check(nope) = %v, want NotFound: unknown service", err)
	}
	if got := md.Get("x-ebb-trailer"); len(got) != 1 || got[0] != "intact" {
		t.Errorf("error trailer x-ebb-trailer = %q, want [intact]", got)
	}

	// A server stream: each status arrives before the next is set.
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "ebb.test"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING,
		healthpb.HealthCheckResponse_NOT_SERVING,
		healthpb.HealthCheckResponse_SERVING,
	} {
		if i > 0 {
			hs.SetServingStatus("ebb.test", want)
		}
		got, err := stream.Recv()
		if err != nil || got.GetStatus() != want {
			t.Fatalf("Watch message %d = %v, %v; want %v", i, got, err, want)
		}
	}
	hs.Shutdown() // ends nothing, sets NOT_SERVING
	if got, err := stream.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after Shutdown = %v, %v; want NOT_SERVING", got, err)
	}
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsWrite writes one final text frame, masked when mask is set (a client's).
func wsWrite(w io.Writer, payload []byte, mask bool) error {
	if len(payload) > 125 {
		return errors.New("payload too long for this test")
	}
	hdr := []byte{0x81, byte(len(payload))}
	p := append([]byte(nil), payload...)
	if mask {
		hdr[1] |= 0x80
		key := []byte{1, 2, 3, 4}
		hdr = append(hdr, key...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	_, err := w.Write(append(hdr, p...))
	return err
}

// wsRead reads one frame of up to 125 bytes and returns its opcode and
// unmasked payload.
func wsRead(r io.Reader) (op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n > 125 {
		return 0, nil, fmt.Errorf("frame length %d: too long for this test", n)
	}
	var key [4]byte
	masked := hdr[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return hdr[0] & 0x0f, payload, nil
}

// wsEcho is a minimal WebSocket server: it upgrades by hand and echoes
// text frames with "echo: " in front until the client closes.
func wsEcho(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
			!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "not a websocket upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		rw.Flush()
		for {
			op, p, err := wsRead(rw)
			if err != nil || op == 0x8 { // close
				return
			}
			if err := wsWrite(rw, append([]byte("echo: "), p...), false); err != nil {
				return
			}
			rw.Flush()
		}
	}
}

// TestWebSocket: an upgrade goes through, held first, and frames flow both
// ways over the upgraded connection.
func TestWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: web.shop\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	e.waitHeld(shopWeb, 1)
	b := newBackend(t, "pod-1", wsEcho(t))
	e.eps.SetReady("shop", "web", b.addr)

	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade answer %d %v, want 101 with the accept key", resp.StatusCode, resp.Header)
	}
	for i := range 3 {
		msg := fmt.Sprintf("message %d", i)
		if err := wsWrite(conn, []byte(msg), true); err != nil {
			t.Fatal(err)
		}
		op, p, err := wsRead(br)
		if err != nil || op != 1 || string(p) != "echo: "+msg {
			t.Fatalf("frame %d: op %d %q %v, want text %q", i, op, p, err, "echo: "+msg)
		}
	}
}

// TestServerSentEvents: 100 events with a delay between them; the server
// sends an event only after the client has seen the one before, so a proxy
// that buffered would stall the stream. The same for a chunked token stream
// of another type (an LLM server's NDJSON).
func TestServerSentEvents(t *testing.T) {
	const events = 100
	for _, tc := range []struct{ proto, contentType string }{
		{"http1", "text/event-stream"},
		{"h2c", "text/event-stream"},
		{"http1", "application/x-ndjson"},
		{"h2c", "application/x-ndjson"},
	} {
		proto := tc.proto
		t.Run(proto+"/"+tc.contentType, func(t *testing.T) {
			e := newEnv(t, nil)
			seen := make(chan int)
			b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("Cache-Control", "no-cache")
				rc := http.NewResponseController(w)
				for i := range events {
					if i > 0 {
						time.Sleep(time.Millisecond) // the delay between events: a real server's pace
					}
					fmt.Fprintf(w, "id: %d\ndata: token %d\n\n", i, i)
					if err := rc.Flush(); err != nil {
						t.Error(err)
						return
					}
					select {
					case got := <-seen:
						if got != i {
							t.Errorf("client saw event %d, want %d", got, i)
							return
						}
					case <-time.After(10 * time.Second):
						t.Errorf("client did not see event %d within 10s: the stream is buffered", i)
						return
					case <-r.Context().Done():
						return
					}
				}
			})
			e.eps.SetReady("shop", "web", b.addr)
			client := e.client
			if proto == "h2c" {
				client = h2cClient(t)
			}
			req := e.request(context.Background(), "GET", "web.shop", "/events", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			sc := bufio.NewScanner(resp.Body)
			n := 0
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "data: ") {
					continue
				}
				if want := fmt.Sprintf("data: token %d", n); line != want {
					t.Fatalf("event %d: %q, want %q", n, line, want)
				}
				seen <- n
				n++
			}
			if n != events {
				t.Errorf("client saw %d events, want %d (%v)", n, events, sc.Err())
			}
		})
	}
}

func TestGRPCTrailersOnly(t *testing.T) {
	res := &http.Response{Header: http.Header{
		"Content-Type":  {"application/grpc"},
		"Grpc-Status":   {"5"},
		"Grpc-Message":  {"unknown service"},
		"X-Ebb-Trailer": {"intact"},
	}}
	grpcTrailersOnly(res)
	wantH := http.Header{"Content-Type": {"application/grpc"}}
	wantT := http.Header{"Grpc-Status": {"5"}, "Grpc-Message": {"unknown service"}, "X-Ebb-Trailer": {"intact"}}
	if fmt.Sprint(res.Header) != fmt.Sprint(wantH) || fmt.Sprint(res.Trailer) != fmt.Sprint(wantT) {
		t.Errorf("got header %v trailer %v, want %v and %v", res.Header, res.Trailer, wantH, wantT)
	}
	for _, h := range []http.Header{
		{"Content-Type": {"application/grpc"}, "X-A": {"1"}},         // a gRPC response with messages to come
		{"Content-Type": {"application/json"}, "Grpc-Status": {"0"}}, // not gRPC
	} {
		res := &http.Response{Header: h.Clone()}
		grpcTrailersOnly(res)
		if fmt.Sprint(res.Header) != fmt.Sprint(h) || res.Trailer != nil {
			t.Errorf("%v: got header %v trailer %v, want it untouched", h, res.Header, res.Trailer)
		}
	}
}

// TestGRPCManyHeldOnOneConnection: a sidecar multiplexes its clients over
// one HTTP/2 connection; 300 calls on one connection are all held at once
// (Go's default would let 250 streams in) and all answered on the wake.
func TestGRPCManyHeldOnOneConnection(t *testing.T) {
	const n = 300
	e := newEnv(t, nil)
	hs := health.NewServer()
	hs.SetServingStatus("ebb.test", healthpb.HealthCheckResponse_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///"+e.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("web.shop"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ebb.test"})
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("status %v", resp.GetStatus())
			}
			errs <- err
		}()
	}
	e.waitHeld(shopWeb, n)
	go gs.Serve(ln)
	e.eps.SetReady("shop", "web", ln.Addr().String())
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
