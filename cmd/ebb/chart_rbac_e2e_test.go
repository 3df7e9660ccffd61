package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/kube/controlplane"
	"github.com/ebbscale/ebb/queries/storetest"
	"github.com/ebbscale/ebb/shutdown"
)

// The chart's release in these tests: its own namespace, ServiceAccount
// and ClusterRoles (ebb-features, ebb-features-state, ...), apart from
// deploy/'s, which other tests change.
const (
	featRelease = "ebb-features"
	featUser    = "system:serviceaccount:" + featRelease + ":" + featRelease
)

// chartHelm returns the helm of `make test-deps`, or ends the test: it
// fails under CI=true and skips otherwise.
func chartHelm(t *testing.T) string {
	t.Helper()
	p := controlplane.DefaultBinaries().Helm
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("no helm at %s: run `make test-deps` to build it", p)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	return p
}

// renderChartRBAC renders the chart's Namespace, ServiceAccount and RBAC
// for release ebb-features with the --set values given.
func renderChartRBAC(t *testing.T, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", featRelease, "../../charts/ebb", "--namespace", featRelease, "--set", "namespace.create=true"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(chartHelm(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %v: %v", args, err)
	}
	objs, err := controlplane.Decode(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	var keep []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			keep = append(keep, o)
		}
	}
	return keep
}

// featureEnv is the chart's ServiceAccount with the RBAC of one set of
// toggles applied for real, and a kubeconfig that authenticates as it.
type featureEnv struct {
	*kubeEnv
	kubeconfig string
}

var (
	featClusterRoles        = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	featClusterRoleBindings = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}
)

// startFeature applies the chart's RBAC for the toggles given, removes
// the ClusterRoles and bindings of the other features, and waits until
// the authorizer answers by exactly the rules rendered.
func startFeature(t *testing.T, sets ...string) *featureEnv {
	t.Helper()
	k := startKube(t, "shop")
	ctx := context.Background()
	objs := renderChartRBAC(t, sets...)
	if err := k.cp.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	rendered := map[string]bool{}
	for _, o := range objs {
		rendered[o.GetKind()+"/"+o.GetName()] = true
	}
	dyn := dynamic.NewForConfigOrDie(k.cp.Admin)
	for _, feature := range []string{"", "-state", "-activator", "-autopilot"} {
		name := featRelease + feature
		for kind, gvr := range map[string]schema.GroupVersionResource{"ClusterRole": featClusterRoles, "ClusterRoleBinding": featClusterRoleBindings} {
			if rendered[kind+"/"+name] {
				continue
			}
			if err := dyn.Resource(gvr).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}
	f := &featureEnv{kubeEnv: k, kubeconfig: filepath.Join(t.TempDir(), "ebb-features.kubeconfig")}
	sa, err := k.cp.ServiceAccount(ctx, featRelease, featRelease)
	if err != nil {
		t.Fatal(err)
	}
	if err := controlplane.WriteKubeconfig(sa, f.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return f
}

// may asks the API server whether the chart's ServiceAccount may do a, in
// namespace shop.
func (f *featureEnv) may(t *testing.T, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	a.Namespace = "shop"
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               featUser,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + featRelease, "system:authenticated"},
		ResourceAttributes: &a,
	}}
	got, err := f.client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status.Allowed
}

// The permissions of each feature, as (group, resource, verb).
var (
	servingGrants   = [][3]string{{"apps", "deployments", "list"}, {"apps", "deployments", "watch"}, {"apps", "statefulsets", "list"}, {"apps", "statefulsets", "watch"}}
	stateGrants     = [][3]string{{"apps", "deployments", "patch"}, {"apps", "statefulsets", "patch"}}
	activatorGrants = [][3]string{{"", "services", "list"}, {"", "services", "watch"},
		{"discovery.k8s.io", "endpointslices", "get"}, {"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
		{"discovery.k8s.io", "endpointslices", "create"}, {"discovery.k8s.io", "endpointslices", "update"}, {"discovery.k8s.io", "endpointslices", "delete"}}
	autopilotGrants = [][3]string{{"apps", "deployments", "list"}, {"apps", "statefulsets", "list"},
		{"metrics.k8s.io", "pods", "list"}, {"apps", "replicasets", "list"}, {"", "pods", "list"}, {"", "namespaces", "get"}}
)

// waitGrants waits until the authorizer allows exactly the grants given
// among those of every feature (RBAC follows a change within a moment).
func (f *featureEnv) waitGrants(t *testing.T, want ...[][3]string) {
	t.Helper()
	allowed := map[[3]string]bool{}
	for _, g := range want {
		for _, a := range g {
			allowed[a] = true
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range slices.Concat(servingGrants, stateGrants, activatorGrants, autopilotGrants) {
		for f.may(t, authorizationv1.ResourceAttributes{Group: g[0], Resource: g[1], Verb: g[2]}) != allowed[g] {
			if time.Now().After(deadline) {
				t.Fatalf("%s may %s %s.%s: %v after 10s, want %v", featUser, g[2], g[1], g[0], !allowed[g], allowed[g])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitIsActive asks IsActive until it answers want without an error (it
// answers Unavailable until ebb has read the workloads' annotations).
func waitIsActive(t *testing.T, e *e2e, name string, want bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := e.client.IsActive(context.Background(), ref(name))
		if err == nil && r.Result == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IsActive shop/%s: %v, %v after 30s, want %v\nlog:\n%s", name, r, err, want, e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestChartRBACByFeature runs `ebb serve` as the chart's ServiceAccount
// with the RBAC of one feature's toggles at a time, and shows that each
// feature works with only its own rules, and that the ServiceAccount has
// no rule of a feature that is off:
//   - serving alone reads the workloads' annotations (an opted-out
//     workload stays active, an idle one goes idle) but may not write
//     them: its patch is refused;
//   - serving and state write ebb.dev/state;
//   - serving and the activator switch an opted-in Service to ebb's own
//     EndpointSlice, with no patch rule;
//   - with serving off ebb runs without cluster access, as the chart's
//     Deployment environment makes it in a pod;
//   - the autopilot alone reads pods, ReplicaSets and namespaces, and is let
//     through to metrics.k8s.io (which this API server does not serve:
//     404, not 403), with nothing of serving.
func TestChartRBACByFeature(t *testing.T) {
	x := startExporter(t)

	t.Run("serving", func(t *testing.T) {
		f := startFeature(t, "rbac.state=false", "activator.enabled=false")
		f.waitGrants(t, servingGrants)
		f.deployment(t, "feat-serve-optout", map[string]string{shutdown.AnnotationAutoshutdown: "false"})
		f.deployment(t, "feat-serve-idle", nil)
		e := startLiveWith(t, x, "--kubeconfig="+f.kubeconfig)
		waitLog(t, e, "watching workloads' autoshutdown annotations")
		// Read through list and watch: the opt-out keeps a workload without
		// traffic active; one without it goes idle.
		waitIsActive(t, e, "feat-serve-optout", true)
		waitIsActive(t, e, "feat-serve-idle", false)
		waitLog(t, e, `cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"shop\"`)
		if a, _ := f.annotations(t, "feat-serve-idle"); a[shutdown.AnnotationState] != "" {
			t.Errorf("feat-serve-idle: %s = %q written without the state rule", shutdown.AnnotationState, a[shutdown.AnnotationState])
		}
	})

	t.Run("serving and state", func(t *testing.T) {
		f := startFeature(t, "activator.enabled=false")
		f.waitGrants(t, servingGrants, stateGrants)
		f.deployment(t, "feat-state-idle", nil)
		f.statefulSet(t, "feat-state-set", map[string]string{shutdown.AnnotationAutoshutdown: "false"})
		e := startLiveWith(t, x, "--kubeconfig="+f.kubeconfig)
		waitIsActive(t, e, "feat-state-idle", false)
		waitIsActive(t, e, "feat-state-set", true)
		f.waitState(t, e, "feat-state-idle", "idle: no activity within idle-after 3s")
		f.waitState(t, e, "feat-state-set", "active: autoshutdown disabled")
	})

	t.Run("activator", func(t *testing.T) {
		f := startFeature(t, "rbac.state=false")
		f.waitGrants(t, servingGrants, activatorGrants)
		ctx := context.Background()
		f.deployment(t, "feat-hold", map[string]string{kube.AnnotationHoldRequests: "true"})
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "feat-hold", Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "feat-hold"},
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		if _, err := f.client.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = f.client.CoreV1().Services("shop").Delete(context.Background(), "feat-hold", metav1.DeleteOptions{})
		})
		// The activator's address as its slice lists it: ebb runs outside
		// the cluster, so it is given (TEST-NET-1: nothing connects to it;
		// no kube-proxy runs here), and the API server refuses loopback.
		e := startLiveWith(t, x, "--kubeconfig="+f.kubeconfig,
			"--activator-addr="+net.JoinHostPort("127.0.0.1", "0"), "--activator-ip=192.0.2.10")
		waitIsActive(t, e, "feat-hold", false)
		deadline := time.Now().Add(30 * time.Second)
		for {
			sl, err := f.client.DiscoveryV1().EndpointSlices("shop").Get(ctx, "feat-hold.ebb", metav1.GetOptions{})
			if err == nil {
				if len(sl.Endpoints) != 1 || !slices.Equal(sl.Endpoints[0].Addresses, []string{"192.0.2.10"}) {
					t.Errorf("ebb's slice lists %v, want the activator at 192.0.2.10", sl.Endpoints)
				}
				t.Cleanup(func() {
					_ = f.client.DiscoveryV1().EndpointSlices("shop").Delete(context.Background(), "feat-hold.ebb", metav1.DeleteOptions{})
				})
				break
			}
			if !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no EndpointSlice shop/feat-hold.ebb after 30s\nlog:\n%s", e.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("no serving: no cluster access", func(t *testing.T) {
		// With rbac.serving off the chart mounts no token and blanks
		// KUBERNETES_SERVICE_HOST, which the kubelet sets in every
		// container; a container's own env wins over the kubelet's.
		cmd := exec.Command(chartHelm(t), "template", featRelease, "../../charts/ebb", "--namespace", featRelease,
			"--set", "rbac.serving=false", "--set", "rbac.state=false", "--set", "activator.enabled=false", "--show-only", "templates/deployment.yaml")
		cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		objs, err := controlplane.Decode(strings.NewReader(string(out)))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%d objects, %v; want the Deployment", len(objs), err)
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &dep); err != nil {
			t.Fatal(err)
		}
		var hostEnv *corev1.EnvVar
		for i, v := range dep.Spec.Template.Spec.Containers[0].Env {
			if v.Name == "KUBERNETES_SERVICE_HOST" {
				hostEnv = &dep.Spec.Template.Spec.Containers[0].Env[i]
			}
		}
		if hostEnv == nil {
			t.Fatal("the Deployment does not set KUBERNETES_SERVICE_HOST")
		}
		prom := storetest.StartPrometheus(t, storetest.PromOptions{ScrapeTarget: x.addr, ScrapeInterval: liveScrape})
		flags := []string{"--prometheus-url=" + prom.URL, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-format=text"}
		// In a pod the kubelet's value comes first and the container's
		// wins: serveProcess's env is added after the test's own.
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
		t.Setenv("KUBERNETES_SERVICE_PORT", "443")
		waitOutput(t, serveProcess(t, hostEnv.Name+"="+hostEnv.Value, flags...), "no cluster access: running on trigger metadata alone")
		// Without the chart's blank value ebb looks for the token the pod
		// does not mount, and does not start.
		waitOutput(t, serveProcess(t, "KUBERNETES_SERVICE_PORT=443", flags...),
			"ebb: in-cluster config: open /var/run/secrets/kubernetes.io/serviceaccount/token: no such file or directory")
	})

	t.Run("autopilot", func(t *testing.T) {
		f := startFeature(t, "rbac.serving=false", "rbac.state=false", "activator.enabled=false", "autopilot.enabled=true")
		f.waitGrants(t, autopilotGrants)
		cfg, err := f.cp.ServiceAccount(context.Background(), featRelease, featRelease)
		if err != nil {
			t.Fatal(err)
		}
		sa := kubernetes.NewForConfigOrDie(cfg)
		ctx := context.Background()
		if _, err := sa.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list pods: %v", err)
		}
		if _, err := sa.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list replicasets: %v", err)
		}
		if _, err := sa.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			t.Errorf("get namespace: %v", err)
		}
		// Let through, and then not found: no metrics-server runs here.
		_, err = sa.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods").DoRaw(ctx)
		if !apierrors.IsNotFound(err) {
			t.Errorf("list pods.metrics.k8s.io: %v, want 404 (allowed, not served)", err)
		}
		// The workloads it reports on, read and never written (that
		// ebb recommend works with these rules alone, on PodMetrics
		// served as metrics-server serves them, is
		// TestAutopilotRBACIsMinimal's).
		if _, err := sa.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list deployments: %v", err)
		}
		_, err = sa.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
		want := `deployments.apps "web" is forbidden: User "` + featUser + `" cannot patch resource "deployments" in API group "apps" in the namespace "shop"`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Errorf("patch deployments: %v, want Forbidden %q", err, want)
		}
	})
}
