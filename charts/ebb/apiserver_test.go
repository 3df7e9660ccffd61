package chart_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// cluster is a real API server with the CRDs of every optional object the
// chart renders: KEDA's, the Prometheus Operator's and cert-manager's.
var cluster = controlplane.Shared{Config: controlplane.Config{KEDACRDs: true, MonitoringCRDs: true, CertManagerCRDs: true}}

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// strictDryRun is a server-side dry run that refuses unknown and duplicate
// fields instead of dropping them.
var strictDryRun = metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}

// warnings records the API server's warnings (Pod Security's among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// apiEnv is the control plane, an admin client that records warnings, and
// the namespaces the renders need: ebb-system from the chart (labelled
// for Pod Security "restricted"), keda and shop.
type apiEnv struct {
	cp     *controlplane.ControlPlane
	client kubernetes.Interface
	dyn    dynamic.Interface
	warn   *warnings
}

var setupOnce sync.Once

func startAPI(t *testing.T) *apiEnv {
	t.Helper()
	helmBinary(t)
	cp := cluster.Get(t)
	w := &warnings{}
	cfg := rest.CopyConfig(cp.Admin)
	cfg.WarningHandler = w
	e := &apiEnv{cp: cp, client: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg), warn: w}
	ctx := context.Background()
	var err error
	setupOnce.Do(func() {
		// The chart's own Namespace, for real: Pod Security reads its labels.
		for _, d := range render(t, "--set", "namespace.create=true", "--show-only", "templates/namespace.yaml") {
			objs, derr := controlplane.Decode(strings.NewReader(d.yaml))
			if derr != nil {
				err = derr
				return
			}
			if err = cp.Apply(ctx, objs); err != nil {
				return
			}
		}
		for _, ns := range []string{"keda", "shop"} {
			if err = cp.EnsureNamespace(ctx, ns); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.client.CoreV1().Namespaces().Get(ctx, "ebb-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Fatalf("namespace ebb-system: pod-security.kubernetes.io/enforce = %q, want restricted", got)
	}
	e.warn.take()
	return e
}

// dryRun creates y's objects by a strict server-side dry run and returns
// the first error.
func (e *apiEnv) dryRun(t *testing.T, y string) error {
	t.Helper()
	objs, err := controlplane.Decode(strings.NewReader(y))
	if err != nil {
		return err
	}
	for _, o := range objs {
		ri, err := e.cp.Resource(o)
		if err != nil {
			return err
		}
		if _, err := ri.Create(context.Background(), o, strictDryRun); err != nil {
			return err
		}
	}
	return nil
}

// TestOnAPIServer creates the default render and the render with every
// feature on, object by object, by a strict server-side dry run: every
// field of the built-in objects and of the CRDs' objects (ServiceMonitor,
// PrometheusRule, Certificate) is one the API server knows. Pod Security
// "restricted" is enforced on ebb-system and warns of nothing.
func TestOnAPIServer(t *testing.T) {
	e := startAPI(t)
	for name, args := range map[string][]string{"default": defaultValues, "all features": allFeatures} {
		t.Run(name, func(t *testing.T) {
			for _, d := range render(t, args...) {
				if d.source == "templates/namespace.yaml" {
					continue // applied for real by startAPI
				}
				if err := e.dryRun(t, d.yaml); err != nil {
					t.Errorf("%s: %v", d.source, err)
				}
				if w := e.warn.take(); len(w) > 0 {
					t.Errorf("%s: the API server warns: %q", d.source, w)
				}
			}
		})
	}

	t.Run("strict validation refuses a misspelt field of a CRD's object", func(t *testing.T) {
		err := e.dryRun(t, "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: ebb\n  namespace: ebb-system\nspec:\n  selector: {}\n  endpoint:\n    - port: http-metrics\n")
		want := `ServiceMonitor in version "v1" cannot be handled as a ServiceMonitor: strict decoding error: unknown field "spec.endpoint"`
		if !apierrors.IsBadRequest(err) || err.Error() != want {
			t.Errorf("got %v, want BadRequest %q", err, want)
		}
	})
}

// TestPodSecurityRestricted creates a Pod of the rendered Deployment's
// template (default and every feature on) in ebb-system, whose namespace
// enforces Pod Security "restricted", by a dry run: admission lets it in.
// The same Pod without its seccomp profile is refused, which shows that
// the policy is enforced.
func TestPodSecurityRestricted(t *testing.T) {
	e := startAPI(t)
	ctx := context.Background()
	pods := e.client.CoreV1().Pods("ebb-system")
	for name, args := range map[string][]string{"default": defaultValues, "all features": allFeatures} {
		t.Run(name, func(t *testing.T) {
			var dep *appsv1.Deployment
			for _, d := range render(t, append(args, "--show-only", "templates/deployment.yaml")...) {
				obj, err := decodeStrict(d.yaml)
				if err != nil {
					t.Fatal(err)
				}
				dep = obj.(*appsv1.Deployment)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ebb-pod", Namespace: "ebb-system", Labels: dep.Spec.Template.Labels},
				Spec: dep.Spec.Template.Spec}
			if _, err := pods.Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("the Deployment's pod in a restricted namespace: %v", err)
			}
			if w := e.warn.take(); len(w) > 0 {
				t.Errorf("the API server warns: %q", w)
			}

			pod.Spec.SecurityContext.SeccompProfile = nil
			_, err := pods.Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			want := `pods "ebb-pod" is forbidden: violates PodSecurity "restricted:latest": seccompProfile (pod or container "ebb" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`
			if !apierrors.IsForbidden(err) || err.Error() != want {
				t.Errorf("without a seccomp profile: %v, want Forbidden %q", err, want)
			}
		})
	}
}

// TestNotesExample installs the chart in a dry run on the API server and creates
// the ScaledObject (and, with TLS, the ClusterTriggerAuthentication) that
// NOTES.txt tells the user to copy, by a strict dry run against KEDA's CRDs.
func TestNotesExample(t *testing.T) {
	e := startAPI(t)
	for _, tt := range []struct {
		name      string
		args      []string
		wantKinds string
	}{
		{"plain", nil, "ScaledObject"},
		{"mutual TLS", []string{"--set", "tls.mode=secret", "--set", "tls.secretName=ebb-tls"}, "ClusterTriggerAuthentication ScaledObject"},
		{"every feature, cert-manager TLS", []string{"-f", "testdata/all-features.yaml", "--set", "namespace.create=false"}, "ClusterTriggerAuthentication ScaledObject"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A dry run against the real API server: helm reads the APIs it
			// serves (the CRDs' among them) and renders NOTES.txt.
			out, stderr, err := helm(t, append([]string{"install", "ebb", ".", "--namespace", "ebb-system", "--dry-run=server",
				"--kubeconfig", e.cp.AdminKubeconfig}, tt.args...)...)
			if err != nil {
				t.Fatalf("helm install --dry-run=server: %v\n%s", err, stderr)
			}
			const begin, end = "# ---- example: copy from here ----\n", "# ---- end of example ----\n"
			_, after, ok := strings.Cut(out, "NOTES:\n")
			if !ok {
				t.Fatalf("no NOTES in:\n%s", out)
			}
			_, example, ok1 := strings.Cut(after, begin)
			example, _, ok2 := strings.Cut(example, end)
			if !ok1 || !ok2 {
				t.Fatalf("NOTES.txt has no example between %q and %q:\n%s", begin, end, after)
			}
			objs, err := controlplane.Decode(strings.NewReader(example))
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
			}
			if got := strings.Join(kinds, " "); got != tt.wantKinds {
				t.Errorf("the example holds %s, want %s", got, tt.wantKinds)
			}
			if !strings.Contains(example, "scalerAddress: ebb.ebb-system.svc.cluster.local:9090") {
				t.Errorf("the example's scalerAddress is not ebb's Service:\n%s", example)
			}
			if err := e.dryRun(t, example); err != nil {
				t.Errorf("NOTES.txt's example: %v\n%s", err, example)
			}
		})
	}
}
