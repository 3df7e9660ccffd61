package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries/storetest"
)

// startTenantGateway stands in front of a real Prometheus as Mimir's
// gateway does: it answers 401 "no org id" without an X-Scope-OrgID header.
func startTenantGateway(t *testing.T, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Scope-OrgID") != "team-a" {
			http.Error(w, "no org id", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRecommendSaysWhatIsMissing runs `ebb recommend` against real
// Prometheus servers: an empty report says on stderr why, and exits 3; a
// Mimir-like tenant needs --header as `ebb serve` does.
func TestRecommendSaysWhatIsMissing(t *testing.T) {
	known := storetest.StartPrometheus(t, storetest.PromOptions{History: knownHistory()})
	// A store with an application's metric only: no kube-state-metrics, no
	// cAdvisor.
	bare := storetest.StartPrometheus(t, storetest.PromOptions{History: []storetest.Series{
		{Metric: "app_queue_depth", Labels: map[string]string{"namespace": "shop", "queue": "tasks"}, Samples: storetest.Constant(dataStart, step, nSamples, 5)},
	}})
	gw := startTenantGateway(t, known.URL)
	end := histEnd.Format(time.RFC3339)
	window := " from " + histEnd.Add(-72*time.Hour).Format(time.RFC3339) + " to " + end
	tests := []struct {
		name   string
		args   []string
		stderr string
		code   int
	}{
		{"namespace without workloads", []string{"--prometheus-url=" + known.URL, "--namespace=doesnotexist", "--history=3d", "--end=" + end}, "ebb: no workload to recommend for in namespace doesnotexist" + window +
			": other namespaces have kube-state-metrics' series, doesnotexist has none; check the name (kubectl get namespaces)\n", 3},
		{"namespace of a store without kube-state-metrics and cAdvisor", []string{"--prometheus-url=" + bare.URL, "--namespace=shop", "--history=3d", "--end=" + dataEnd.Format(time.RFC3339)},
			"ebb: no workload to recommend for in namespace shop" +
				" from " + dataEnd.Add(-72*time.Hour).Format(time.RFC3339) + " to " + dataEnd.Format(time.RFC3339) +
				"; the store has no series in namespace shop of:\n" +
				"  kube_pod_container_resource_requests, kube_pod_container_resource_limits, kube_deployment_status_replicas, kube_statefulset_status_replicas (kube-state-metrics)\n" +
				"  container_cpu_usage_seconds_total, container_memory_working_set_bytes (cAdvisor, scraped through the kubelet)\n" +
				"  DCGM_FI_DEV_FB_USED (dcgm-exporter)\n" +
				"  istio_requests_total (Istio)\n" +
				"check that Prometheus scrapes these exporters, and --history\n", 3},
		{"store without kube-state-metrics and cAdvisor", []string{"--prometheus-url=" + bare.URL, "--history=3d", "--end=" + dataEnd.Format(time.RFC3339)}, "ebb: no workload to recommend for in any namespace" +
			" from " + dataEnd.Add(-72*time.Hour).Format(time.RFC3339) + " to " + dataEnd.Format(time.RFC3339) +
			"; the store has no series in any namespace of:\n" +
			"  kube_pod_container_resource_requests, kube_pod_container_resource_limits, kube_deployment_status_replicas, kube_statefulset_status_replicas (kube-state-metrics)\n" +
			"  container_cpu_usage_seconds_total, container_memory_working_set_bytes (cAdvisor, scraped through the kubelet)\n" +
			"  DCGM_FI_DEV_FB_USED (dcgm-exporter)\n" +
			"  istio_requests_total (Istio)\n" +
			"check that Prometheus scrapes these exporters, and --history\n", 3},
		{"simulator namespace without workloads", []string{"--source=sim", "--namespace=doesnotexist"}, "ebb: no workload to recommend for in namespace doesnotexist" +
			" from 2026-11-02T08:00:00Z to 2026-11-16T08:00:00Z: the simulator's namespaces are ml, notebooks and shop\n", 3},
		{"tenant missing", []string{"--prometheus-url=" + gw, "--namespace=shop", "--history=3d", "--end=" + end}, "", 1},
		{"tenant header", []string{"--prometheus-url=" + gw, "--header=X-Scope-OrgID: team-a", "--namespace=shop", "--history=3d", "--end=" + end}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), append([]string{"recommend"}, tt.args...), &stdout, &stderr, nil)
			got := stderr.String()
			if tt.name == "tenant missing" {
				// The query names its expression: compare around it.
				if !strings.HasPrefix(got, "ebb: read ") || !strings.HasSuffix(got, "/api/v1/query_range answered 401 Unauthorized: \"no org id\"; "+
					"set the store's credentials with --bearer-token-file, --basic-auth-user and --basic-auth-password-file, or --header (e.g. 'X-Scope-OrgID: tenant' for Mimir)\n") {
					t.Errorf("stderr:\n%s\nwant a read error with 401 and the credential flags", got)
				}
				tt.stderr = got
			}
			if code != tt.code || got != tt.stderr {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, got, tt.code, tt.stderr)
			}
			if tt.code == 0 && !strings.Contains(stdout.String(), "shop/web") {
				t.Errorf("stdout lacks shop/web:\n%s", &stdout)
			}
		})
	}
}
