package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/storetest"
)

// TestServeLimits runs ebb serve on a real Prometheus with
// --max-workloads=2: KEDA's client registers two ScaledObjects, the third
// is refused with ResourceExhausted naming the limit; and a slow-loris
// client that sends /metrics' request headers one byte a second is cut
// off by the HTTP server's header timeout while a normal scrape still
// answers.
func TestServeLimits(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{})
	e := startServe(t, prom.URL, nil, "--max-workloads=2", "--interval=1s", "--max-staleness=5s")

	md := map[string]string{"signal": "requests", "target": "10"}
	for _, name := range []string{"cart", "checkout"} {
		if _, err := e.client.GetMetricSpec(context.Background(), soRef("shop", name, md)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	_, err := e.client.GetMetricSpec(context.Background(), soRef("shop", "bogus-1", md))
	const want = "ebb serves at most 2 ScaledObjects (--max-workloads); shop/bogus-1 is refused until one is forgotten (--forget-after)"
	if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != want {
		t.Errorf("third ScaledObject: got %v, want ResourceExhausted %q", err, want)
	}

	addr := strings.TrimPrefix(e.http, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /metrics HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: slow-loris\r\nAccept: */*\r\nX-Padding: " + strings.Repeat("a", 40) + "\r\n\r\n"
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		// The server answers a timed-out header read with 408 or by
		// closing; either way the read ends when it gives up.
		_, err := io.ReadAll(bufio.NewReader(conn))
		closed <- err
	}()
	sent, readEnded := 0, false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for sent < len(req) {
		select {
		case <-closed:
			readEnded = true
			break loop
		case <-tick.C:
			if _, err := conn.Write([]byte{req[sent]}); err != nil {
				break loop
			}
			sent++
			if sent == 3 {
				// Meanwhile a normal scrape answers.
				if body, code := httpGet(t, e.http+"/metrics"); code != 200 || !strings.Contains(body, "ebb_ready") {
					t.Errorf("scrape during the slow client: %d", code)
				}
			}
		}
	}
	elapsed := time.Since(start)
	if sent == len(req) {
		t.Fatalf("the slow client sent all %d bytes of its headers over %s without being cut off", sent, elapsed.Round(time.Second))
	}
	if elapsed > httpReadHeaderTimeout+5*time.Second {
		t.Errorf("cut off after %s, want about %s", elapsed.Round(time.Second), httpReadHeaderTimeout)
	}
	if !readEnded {
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Error("a write failed but the connection is still open for reading")
		}
	}
	t.Logf("slow-loris client cut off after %d of %d header bytes, %s", sent, len(req), elapsed.Round(time.Second))
}
