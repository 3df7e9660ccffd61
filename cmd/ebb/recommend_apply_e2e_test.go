package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries/storetest"
)

// requestLog records the method, path and query of every request a
// client sends, and the status of its answer.
type requestLog struct {
	mu    sync.Mutex
	lines []string
	next  http.RoundTripper
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	status := "error"
	if err == nil {
		status = resp.Status
	}
	l.mu.Lock()
	l.lines = append(l.lines, req.Method+" "+req.URL.Path+"?"+req.URL.RawQuery+" "+status)
	l.mu.Unlock()
	return resp, err
}

func (l *requestLog) patches() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.HasPrefix(line, http.MethodPatch+" ") {
			out = append(out, line)
		}
	}
	return out
}

// TestRecommendApplyOnControlPlane runs `ebb recommend --annotate --apply`
// on a real Prometheus loaded with known history against real workloads:
// shop/web is a Deployment, ml/llm a StatefulSet. It patches them as the
// ServiceAccount of deploy/ with deploy/'s RBAC, with server-side field
// validation Strict, and keeps their other annotations.
func TestRecommendApplyOnControlPlane(t *testing.T) {
	r := startRBAC(t)
	ctx := context.Background()
	if err := r.cp.EnsureNamespace(ctx, "ml"); err != nil {
		t.Fatal(err)
	}
	r.deployment(t, "web", map[string]string{"team": "shop"})
	ml := &kubeEnv{cp: r.cp, client: r.client, ns: "ml"}
	ml.statefulSet(t, "llm", nil)

	sa, err := r.cp.ServiceAccount(ctx, "ebb-system", "ebb")
	if err != nil {
		t.Fatal(err)
	}
	log := &requestLog{}
	sa.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { log.next = rt; return log }
	deps := withoutLiveCluster(recommendDeps{getenv: func(string) string { return "" }, kubeClient: func(string) (kubernetes.Interface, error) {
		return kubernetes.NewForConfig(rest.CopyConfig(sa))
	}})

	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: knownHistory()})
	args := []string{
		"--prometheus-url=" + prom.URL, "--namespace=shop", "--namespace=ml",
		"--history=3d", "--end=" + histEnd.Format(time.RFC3339),
		"--format=json", "--output=" + filepath.Join(t.TempDir(), "report.json"),
		"--annotate", "--apply",
	}
	var stdout, stderr bytes.Buffer
	if err := recommend(ctx, args, &stdout, &stderr, deps); err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	for _, line := range []string{"shop/web: patched Deployment\n", "ml/llm: patched StatefulSet\n",
		"ml/tgi: skipped, no Deployment or StatefulSet of that name\n", "shop/report: skipped, no Deployment or StatefulSet of that name\n"} {
		if !strings.Contains(stdout.String(), line) {
			t.Errorf("stdout lacks %q:\n%s", line, stdout.String())
		}
	}
	web, err := r.client.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := web.Annotations; got[autopilot.AnnotationKey] != wantWebAnnotation || got["team"] != "shop" {
		t.Errorf("shop/web annotations %v, want %s and team=shop kept", got, wantWebAnnotation)
	}
	llm, err := r.client.AppsV1().StatefulSets("ml").Get(ctx, "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(llm.Annotations[autopilot.AnnotationKey], `{"schema":"`+autopilot.SchemaVersion+`"`) {
		t.Errorf("ml/llm annotation %q, want a recommendation", llm.Annotations[autopilot.AnnotationKey])
	}

	// Every patch went out with strict field validation and was taken.
	patches := log.patches()
	// The history also has ml/tgi and shop/report, which the cluster lacks:
	// both kinds are tried, and they are skipped.
	const q = "?fieldManager=ebb&fieldValidation=Strict "
	want := []string{
		"PATCH /apis/apps/v1/namespaces/ml/deployments/llm" + q + "404 Not Found",
		"PATCH /apis/apps/v1/namespaces/ml/deployments/tgi" + q + "404 Not Found",
		"PATCH /apis/apps/v1/namespaces/ml/statefulsets/llm" + q + "200 OK",
		"PATCH /apis/apps/v1/namespaces/ml/statefulsets/tgi" + q + "404 Not Found",
		"PATCH /apis/apps/v1/namespaces/shop/deployments/report" + q + "404 Not Found",
		"PATCH /apis/apps/v1/namespaces/shop/deployments/web" + q + "200 OK",
		"PATCH /apis/apps/v1/namespaces/shop/statefulsets/report" + q + "404 Not Found",
	}
	slices.Sort(patches)
	slices.Sort(want)
	if !slices.Equal(patches, want) {
		t.Errorf("patches sent:\n%s\nwant:\n%s", strings.Join(patches, "\n"), strings.Join(want, "\n"))
	}
}
