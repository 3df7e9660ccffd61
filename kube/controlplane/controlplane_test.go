package controlplane_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/kube/controlplane"
)

var cluster = controlplane.Shared{Config: controlplane.Config{ControllerManager: true, KEDACRDs: true}}

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// TestVersionsMatchTheBuild checks that the versions the harness looks for
// are the ones the wrapper modules build.
func TestVersionsMatchTheBuild(t *testing.T) {
	for _, tt := range []struct{ gomod, module, want string }{
		{"../../test/tools/kubernetes/go.mod", "k8s.io/kubernetes", controlplane.KubernetesVersion},
		{"../../test/tools/kubernetes/go.mod", "go.etcd.io/etcd/server/v3", controlplane.EtcdVersion},
		{"../../test/tools/keda/go.mod", "github.com/kedacore/keda/v2", controlplane.KEDAVersion},
		{"../../test/tools/helm/go.mod", "helm.sh/helm/v4", controlplane.HelmVersion},
	} {
		b, err := os.ReadFile(tt.gomod)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(tt.module) + `\s+(\S+)`).FindSubmatch(b)
		if m == nil {
			t.Errorf("%s does not require %s", tt.gomod, tt.module)
			continue
		}
		if got := string(m[1]); got != tt.want {
			t.Errorf("%s requires %s %s, the harness looks for %s", tt.gomod, tt.module, got, tt.want)
		}
	}
	// The CRD modules are downloaded, not built: build.sh names their
	// versions itself.
	build, err := os.ReadFile("../../test/tools/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ variable, want string }{
		{"promop", controlplane.PrometheusOperatorVersion},
		{"certmanager", controlplane.CertManagerVersion},
	} {
		m := regexp.MustCompile(`(?m)^` + tt.variable + `=(\S+)$`).FindSubmatch(build)
		if m == nil {
			t.Errorf("test/tools/build.sh sets no %s=", tt.variable)
			continue
		}
		if got := string(m[1]); got != tt.want {
			t.Errorf("test/tools/build.sh copies %s=%s, the harness looks for %s", tt.variable, got, tt.want)
		}
	}
}

// tbRecorder records Skipf and Fatalf instead of ending the test.
type tbRecorder struct {
	testing.TB
	skipped, failed string
}

func (r *tbRecorder) Helper()                        {}
func (r *tbRecorder) Name() string                   { return "recorder" }
func (r *tbRecorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *tbRecorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestMissingBinarySkipsOrFailsInCI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(controlplane.ToolsDirEnv, dir)
	want := "missing binary " + dir + "/etcd-" + controlplane.EtcdVersion + ": run `make test-deps` to build it (about 25 minutes on a cold cache, nothing when cached)"

	t.Setenv("CI", "")
	r := &tbRecorder{TB: t}
	s := &controlplane.Shared{}
	if cp := s.Get(r); cp != nil || r.skipped != "SKIPPED, no control plane: "+want || r.failed != "" {
		t.Errorf("outside CI: got %v, skipped %q, failed %q; want a skip naming %q", cp, r.skipped, r.failed, want)
	}

	t.Setenv("CI", "true")
	r = &tbRecorder{TB: t}
	s = &controlplane.Shared{}
	if cp := s.Get(r); cp != nil || r.failed != "controlplane: "+want || r.skipped != "" {
		t.Errorf("in CI: got %v, skipped %q, failed %q; want a failure naming %q", cp, r.skipped, r.failed, want)
	}
}

func TestStartFailureShowsTheLog(t *testing.T) {
	bins := controlplane.DefaultBinaries()
	if _, err := os.Stat(bins.Etcd); err != nil {
		t.Skipf("no etcd: %v", err)
	}
	bins.APIServer = bins.Etcd // etcd refuses kube-apiserver's flags
	_, err := controlplane.Start(context.Background(), controlplane.Config{Binaries: &bins})
	if err == nil {
		t.Fatal("started with etcd as the API server")
	}
	for _, want := range []string{"kube-apiserver did not start: exited: exit status", "--- last lines of ", "kube-apiserver.log ---", "flag provided but not defined: -etcd-servers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestControlPlane(t *testing.T) {
	cp := cluster.Get(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(cp.Admin)

	t.Run("version", func(t *testing.T) {
		v, err := admin.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != controlplane.KubernetesVersion {
			t.Errorf("server version %s, want %s", v.GitVersion, controlplane.KubernetesVersion)
		}
	})

	t.Run("service account has only what RBAC grants", func(t *testing.T) {
		sa, err := cp.ServiceAccount(ctx, "cp-test", "reader")
		if err != nil {
			t.Fatal(err)
		}
		c := kubernetes.NewForConfigOrDie(sa)
		_, err = c.AppsV1().Deployments("cp-test").List(ctx, metav1.ListOptions{})
		want := `deployments.apps is forbidden: User "system:serviceaccount:cp-test:reader" cannot list resource "deployments" in API group "apps" in the namespace "cp-test"`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("list before a binding: %v, want Forbidden %q", err, want)
		}
	})

	t.Run("KEDA's CRDs", func(t *testing.T) {
		dyn := dynamic.NewForConfigOrDie(cp.Admin)
		for _, r := range []string{"scaledobjects", "scaledjobs", "triggerauthentications", "clustertriggerauthentications"} {
			gvr := schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: r}
			if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("list %s: %v", r, err)
			}
		}
	})

	t.Run("controller manager makes ReplicaSets", func(t *testing.T) {
		if err := cp.EnsureNamespace(ctx, "cp-test"); err != nil {
			t.Fatal(err)
		}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "cp-test"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
				},
			},
		}
		if _, err := admin.AppsV1().Deployments("cp-test").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			rs, err := admin.AppsV1().ReplicaSets("cp-test").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.Items) == 1 && rs.Items[0].OwnerReferences[0].Name == "web" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ReplicaSet of web after 30s: %d ReplicaSets", len(rs.Items))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
