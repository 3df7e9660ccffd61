package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries/storetest"
)

// startAuthGateway stands in front of a real Prometheus as an auth proxy
// does (Mimir's gateway, oauth2-proxy): it answers 401 unless the request
// carries the bearer token.
func startAuthGateway(t *testing.T, upstream, token string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitBody polls url until its body is want, and fails with the last body
// after 20 s.
func waitBody(t *testing.T, url, want string, wantCode int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, code := httpGet(t, url)
		if body == want && code == wantCode {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %q\nwant %d %q", url, code, body, wantCode, want)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting for logic
	}
}

// TestServeSaysWhatIsWrongWithTheStore runs `ebb serve` against a real
// Prometheus reached in a wrong way, one per case: /readyz names the
// store, the kind of failure, since when (ebb's clock), the cause and what
// to do; the failed start-up check counts in ebb_query_errors_total; and
// once the store answers, ebb logs it once with the outage's length.
func TestServeSaysWhatIsWrongWithTheStore(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: e2eHistory()})
	since := evalAt.Format("15:04:05Z")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("unreachable", func(t *testing.T) {
		p := startFaultProxy(t, prom.URL)
		p.set(t, storeDown)
		clk := clock.NewMock()
		clk.Set(evalAt)
		e := startServe(t, p.url(), clk)
		want := "not ready: store " + p.url() + " unreachable since " + since + ": dial tcp " + p.addr +
			": connect: connection refused; check --prometheus-url and that the store runs and is reachable from ebb\n"
		waitBody(t, e.http+"/readyz", want, http.StatusServiceUnavailable)
		e.waitMetrics(t, `ebb_query_errors_total{kind="unreachable",signal="check"} 1`, "\nebb_ready 0\n")

		// The store comes back: the next tick's check reaches it.
		p.set(t, passThrough)
		clk.Add(5 * time.Second)
		waitBody(t, e.http+"/readyz", "ready\n", http.StatusOK)
		e.waitMetrics(t, "\nebb_ready 1\n")
		line := `level=INFO msg="store answers again" url=` + p.url() + " down=5s since=" + evalAt.Format(time.RFC3339) + "\n"
		got := grepLines(e.stderr.String(), "store answers again")
		if _, rest, _ := strings.Cut(got, " "); rest != line { // cut the wall-clock time= of slog's text
			t.Errorf("log lines about the store's return:\n%s\nwant once:\n%s", got, line)
		}
	})

	t.Run("hangs", func(t *testing.T) {
		p := startFaultProxy(t, prom.URL)
		// Once the proxy answers, its server holds the listener that set
		// replaces.
		if _, code := httpGet(t, p.url()+"/-/ready"); code != http.StatusOK {
			t.Fatalf("proxy: HTTP %d", code)
		}
		p.set(t, storeHangs)
		clk := clock.NewMock()
		clk.Set(evalAt)
		e := startServe(t, p.url(), clk, "--query-timeout=1s")
		want := "not ready: store " + p.url() + " unreachable (timed out) since " + since +
			": context deadline exceeded; check --prometheus-url and that the store runs and is reachable from ebb\n"
		waitBody(t, e.http+"/readyz", want, http.StatusServiceUnavailable)
		e.waitMetrics(t, `ebb_query_errors_total{kind="timeout",signal="check"} 1`)
	})

	t.Run("wrong path", func(t *testing.T) {
		clk := clock.NewMock()
		clk.Set(evalAt)
		storeURL := prom.URL + "/api/v1"
		e := startServe(t, storeURL, clk)
		want := "not ready: store " + storeURL + " wrong path since " + since + ": POST " + storeURL + "/api/v1/query answered 404 Not Found: \"404 page not found\"; " +
			"--prometheus-url must be the API root, such as http://prometheus:9090 or http://vmselect:8481/select/0/prometheus; ebb appends /api/v1/query\n"
		waitBody(t, e.http+"/readyz", want, http.StatusServiceUnavailable)
		e.waitMetrics(t, `ebb_query_errors_total{kind="wrong_path",signal="check"} 1`)
	})

	// VictoriaMetrics answers a wrong path with 400 "unsupported path
	// requested", here the cluster's path on a single node.
	t.Run("wrong path, VictoriaMetrics", func(t *testing.T) {
		vm := storetest.StartVictoriaMetrics(t, storetest.VMOptions{})
		clk := clock.NewMock()
		clk.Set(evalAt)
		storeURL := vm.URL + "/select/0/prometheus"
		e := startServe(t, storeURL, clk)
		prefix := "not ready: store " + storeURL + " wrong path since " + since + ": POST " + storeURL + `/api/v1/query answered 400 Bad Request: "remoteAddr: \"127.0.0.1:`
		suffix := "; requestURI: /select/0/prometheus/api/v1/query?nocache=1&query=vector%281%29&time=" + strconv.FormatInt(evalAt.Unix(), 10) + ".000&timeout=10" +
			`; unsupported path requested: \"/select/0/prometheus/api/v1/query\""; ` +
			"--prometheus-url must be the API root, such as http://prometheus:9090 or http://vmselect:8481/select/0/prometheus; ebb appends /api/v1/query\n"
		deadline := time.Now().Add(20 * time.Second)
		for {
			body, code := httpGet(t, e.http+"/readyz")
			if code == http.StatusServiceUnavailable && strings.HasPrefix(body, prefix) && strings.HasSuffix(body, suffix) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %q\nwant 503 %q...%q", code, body, prefix, suffix)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition
		}
		e.waitMetrics(t, `ebb_query_errors_total{kind="wrong_path",signal="check"} 1`)
	})

	t.Run("unauthorized, then a token", func(t *testing.T) {
		gw := startAuthGateway(t, prom.URL, "s3cret")
		clk := clock.NewMock()
		clk.Set(evalAt)
		e := startServe(t, gw, clk)
		want := "not ready: store " + gw + " unauthorized since " + since + ": POST " + gw + "/api/v1/query answered 401 Unauthorized: \"Unauthorized\"; " +
			"set the store's credentials with --bearer-token-file, --basic-auth-user and --basic-auth-password-file, or --header (e.g. 'X-Scope-OrgID: tenant' for Mimir)\n"
		waitBody(t, e.http+"/readyz", want, http.StatusServiceUnavailable)
		e.waitMetrics(t, `ebb_query_errors_total{kind="unauthorized",signal="check"} 1`)

		withToken := startServe(t, gw, clk, "--bearer-token-file="+tokenFile)
		waitBody(t, withToken.http+"/readyz", "ready\n", http.StatusOK)
	})
}
