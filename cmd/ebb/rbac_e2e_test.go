package main

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/kube/controlplane"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// ebbUser is the ServiceAccount of deploy/01-serviceaccount.yaml as RBAC
// names it.
const ebbUser = "system:serviceaccount:ebb-system:ebb"

// rbacEnv is deploy/'s namespace, ServiceAccount and RBAC applied for real,
// and a kubeconfig that authenticates as that ServiceAccount.
type rbacEnv struct {
	*kubeEnv
	kubeconfig string
	role       *rbacv1.ClusterRole // deploy/'s ClusterRoles' rules, all in ClusterRole ebb
}

func startRBAC(t *testing.T) *rbacEnv {
	t.Helper()
	k := startKube(t, "shop")
	ctx := context.Background()
	var objs []*unstructured.Unstructured
	for _, f := range []string{"00-namespace.yaml", "01-serviceaccount.yaml", "02-rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		o, err := controlplane.Decode(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("deploy/%s: %v", f, err)
		}
		objs = append(objs, o...)
	}
	if err := k.cp.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	r := &rbacEnv{kubeEnv: k, kubeconfig: filepath.Join(t.TempDir(), "ebb.kubeconfig")}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && o.GetName() == "ebb" {
			r.role = &rbacv1.ClusterRole{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, r.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r.role == nil {
		t.Fatal("no ClusterRole ebb in deploy/02-rbac.yaml")
	}
	// deploy/ grants one ClusterRole per feature (ebb, ebb-state,
	// ebb-activator; all bound to ebb). These tests take rules away one at
	// a time from the ClusterRole ebb, so it holds them all here and the
	// others none.
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" || o.GetName() == "ebb" {
			continue
		}
		var cr rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cr); err != nil {
			t.Fatal(err)
		}
		r.role.Rules = append(r.role.Rules, cr.Rules...)
		cr.Rules = nil
		if _, err := r.client.RbacV1().ClusterRoles().Update(ctx, &cr, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r.setRules(t, r.role.Rules)
	sa, err := k.cp.ServiceAccount(ctx, "ebb-system", "ebb")
	if err != nil {
		t.Fatal(err)
	}
	if err := controlplane.WriteKubeconfig(sa, r.kubeconfig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.setRules(t, r.role.Rules) })
	return r
}

// setRules replaces the rules of the ClusterRole ebb, and waits until the
// authorizer answers by them.
func (r *rbacEnv) setRules(t *testing.T, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	roles := r.client.RbacV1().ClusterRoles()
	cr, err := roles.Get(ctx, "ebb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr.Rules = rules
	if _, err := roles.Update(ctx, cr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[[3]string]bool{}
	for _, a := range grants(rules) {
		want[a] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range grants(r.role.Rules) {
		for r.allowed(t, a[0], a[1], a[2]) != want[a] {
			if time.Now().After(deadline) {
				t.Fatalf("the authorizer did not follow the new rules for %v within 10s", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// grants lists what rules allow as (group, resource, verb).
func grants(rules []rbacv1.PolicyRule) [][3]string {
	var out [][3]string
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					out = append(out, [3]string{g, res, v})
				}
			}
		}
	}
	return out
}

// allowed asks the API server whether ebb's ServiceAccount may do verb on
// group/resource in namespace shop.
func (r *rbacEnv) allowed(t *testing.T, group, resource, verb string) bool {
	t.Helper()
	return r.review(t, authorizationv1.ResourceAttributes{Namespace: "shop", Group: group, Resource: resource, Verb: verb})
}

func (r *rbacEnv) review(t *testing.T, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               ebbUser,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:ebb-system", "system:authenticated"},
		ResourceAttributes: &attrs,
	}}
	got, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status.Allowed
}

// statefulSet creates a StatefulSet of one replica and deletes it when the
// test ends.
func (k *kubeEnv) statefulSet(t *testing.T, name string, annotations map[string]string) {
	t.Helper()
	labels := map[string]string{"app": name}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns, Annotations: annotations},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
			},
		},
	}
	if _, err := k.client.AppsV1().StatefulSets(k.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := k.client.AppsV1().StatefulSets(k.ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete statefulset %s: %v", name, err)
		}
	})
}

// annotations returns the annotations of the Deployment, or else the
// StatefulSet, shop/name, and the managers of its fields.
func (k *kubeEnv) annotations(t *testing.T, name string) (map[string]string, []metav1.ManagedFieldsEntry) {
	t.Helper()
	ctx := context.Background()
	d, err := k.client.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return d.Annotations, d.ManagedFields
	}
	if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	s, err := k.client.AppsV1().StatefulSets(k.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Annotations, s.ManagedFields
}

// waitState waits until shop/name's ebb.dev/state starts with prefix and
// returns its annotations.
func (k *kubeEnv) waitState(t *testing.T, e *e2e, name, prefix string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, _ := k.annotations(t, name)
		if strings.HasPrefix(a[shutdown.AnnotationState], prefix) {
			return a
		}
		if time.Now().After(deadline) {
			log := "(no ebb process)"
			if e != nil {
				log = e.stderr.String()
			}
			t.Fatalf("%s: %s = %q after 30s, want %q...\nlog:\n%s", name, shutdown.AnnotationState, a[shutdown.AnnotationState], prefix, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until ebb's log holds want.
func waitLog(t *testing.T, e *e2e, want string) {
	t.Helper()
	waitOutput(t, e.stderr, want)
}

// waitOutput waits until out holds want.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("ebb's log lacks %q after 30s:\n%s", want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveArgsEnv hands TestServeProcess its arguments, one a line.
const serveArgsEnv = "EBBTEST_SERVE_ARGS"

// TestServeProcess is not a test of its own: it is `ebb serve` in a
// process of its own, for a test that needs another environment (client-go
// reads its feature gates once per process). serveProcess starts it.
func TestServeProcess(t *testing.T) {
	args := os.Getenv(serveArgsEnv)
	if args == "" {
		t.Skip("runs only as serveProcess's helper process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, append([]string{"serve"}, strings.Split(args, "\n")...), os.Stdout, os.Stderr, os.Environ()))
}

// serveProcess runs `ebb serve` with args in a process of its own with env
// added, until the test ends, and returns its output.
func serveProcess(t *testing.T, env string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$")
	cmd.Env = append(os.Environ(), env, serveArgsEnv+"="+strings.Join(args, "\n"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("ebb serve did not stop within 15s of SIGTERM:\n%s", out)
		}
	})
	return out
}

// ref is a trigger of workload shop/name on the exporter's traffic (which
// is shop/w's): only w has traffic.
func ref(name string) *pb.ScaledObjectRef {
	return soRef("shop", name, map[string]string{"signal": "requests", "target": "5", "window": "10s", "idleAfter": "3s"})
}

// TestAnnotationsWithDeployRBAC runs `ebb serve --kubeconfig` as the
// ServiceAccount of deploy/ with deploy/'s ClusterRole and binding: it reads
// the annotations of real Deployments and StatefulSets and writes its state
// onto them by patch, through a concurrent update, and says which verb on
// which resource is missing once a rule is taken away.
func TestAnnotationsWithDeployRBAC(t *testing.T) {
	r := startRBAC(t)
	ctx := context.Background()
	r.deployment(t, "w", nil)
	r.statefulSet(t, "w-set", nil)
	r.deployment(t, "w-optout", map[string]string{shutdown.AnnotationAutoshutdown: "false"})
	r.statefulSet(t, "w-set-optout", map[string]string{shutdown.AnnotationAutoshutdown: "false"})

	x := startExporter(t)
	x.setTraffic(10)
	e := startLiveWith(t, x, "--kubeconfig="+r.kubeconfig)
	waitLog(t, e, "watching workloads' autoshutdown annotations")
	all := []string{"w", "w-set", "w-optout", "w-set-optout"}
	for _, name := range all {
		e.isActive(t, ref(name)) // KEDA asks: the trigger registers
	}

	// w has traffic; w-set has none; the opted-out Deployment and
	// StatefulSet have none either, but their annotation, read through the
	// ServiceAccount's list and watch, keeps them up.
	a := r.waitState(t, e, "w", "active: traffic above activation 0")
	if _, err := time.Parse(time.RFC3339, a[shutdown.AnnotationLastActive]); err != nil {
		t.Errorf("w: %s = %q: %v", shutdown.AnnotationLastActive, a[shutdown.AnnotationLastActive], err)
	}
	r.waitState(t, e, "w-set", "idle: no activity within idle-after 3s")
	for _, name := range []string{"w-optout", "w-set-optout"} {
		r.waitState(t, e, name, "active: autoshutdown disabled")
		if !e.isActive(t, ref(name)) {
			t.Errorf("%s idle although its annotation opts it out", name)
		}
	}
	for _, name := range all {
		_, mf := r.annotations(t, name)
		if !slices.ContainsFunc(mf, func(m metav1.ManagedFieldsEntry) bool {
			return m.Manager == "ebb" && m.Operation == metav1.ManagedFieldsOperationUpdate
		}) {
			t.Errorf("%s: no field managed by ebb's patch: %+v", name, mf)
		}
	}

	t.Run("concurrent update", func(t *testing.T) {
		// Another writer changes w between two of its own reads: its write
		// from the stale read is refused with a real 409.
		deps := r.client.AppsV1().Deployments("shop")
		stale, err := deps.Get(ctx, "w", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fresh := stale.DeepCopy()
		fresh.Labels = map[string]string{"team": "checkout"}
		if _, err := deps.Update(ctx, fresh, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		stale.Labels = map[string]string{"team": "stale"}
		_, err = deps.Update(ctx, stale, metav1.UpdateOptions{})
		want := `Operation cannot be fulfilled on deployments.apps "w": the object has been modified; please apply your changes to the latest version and try again`
		if !apierrors.IsConflict(err) || err.Error() != want {
			t.Fatalf("stale update: %v, want 409 %q", err, want)
		}
		// ebb's informer saw w at a version that is now old too; its next
		// patch (traffic stops: w goes idle) lands on the current object
		// and keeps the other writer's label.
		x.setTraffic(0)
		r.waitState(t, e, "w", "idle: no activity within idle-after 3s")
		d, err := deps.Get(ctx, "w", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Labels["team"] != "checkout" {
			t.Errorf("w's labels after ebb's patch: %v, want the concurrent writer's team=checkout", d.Labels)
		}
	})

	t.Run("ebb's own write on a stale read", func(t *testing.T) {
		// ebb's StateWriter patches the version of the object its cache
		// showed. Here its cache lags a concurrent writer on purpose: the
		// first patch, made as the ServiceAccount of deploy/, gets a real
		// 409 from the API server; ebb reads again and its second patch
		// lands, keeping the concurrent writer's change and the later
		// last-active that is already there.
		deps := r.client.AppsV1().Deployments("shop")
		r.deployment(t, "w-race", map[string]string{shutdown.AnnotationLastActive: "2026-12-07T06:00:00Z"})
		before, err := deps.Get(ctx, "w-race", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		concurrent := before.DeepCopy()
		concurrent.Labels = map[string]string{"team": "checkout"}
		if _, err := deps.Update(ctx, concurrent, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", r.kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		asEbb, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		targets := &laggingTargets{client: r.client, stale: before}
		w, err := kube.NewStateWriter(kube.StateWriterConfig{Client: asEbb, Targets: targets, Metrics: kube.NewMetrics(reg)})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		defer func() { cancel(); <-done }()
		key := queries.WorkloadKey{Namespace: "shop", Name: "w-race"}
		w.Publish(scaler.WorkloadState{Workload: key, LastActive: time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC),
			Decision: shutdown.Decision{Reason: shutdown.ReasonIdle, Detail: shutdown.Detail{IdleAfter: 15 * time.Minute}}})
		a := r.waitState(t, nil, "w-race", "idle: no activity within idle-after 15m")
		if got := a[shutdown.AnnotationLastActive]; got != "2026-12-07T06:00:00Z" {
			t.Errorf("last-active after ebb's patch = %q, want the later 2026-12-07T06:00:00Z kept", got)
		}
		d, err := deps.Get(ctx, "w-race", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Labels["team"] != "checkout" {
			t.Errorf("labels after ebb's patch: %v, want the concurrent writer's team=checkout", d.Labels)
		}
		for result, want := range map[string]float64{"conflict": 1, "ok": 1} {
			if got := writes(t, reg, result); got != want {
				t.Errorf("ebb_annotation_writes_total{result=%q} = %v, want %v", result, got, want)
			}
		}
	})

	t.Run("patch rule removed", func(t *testing.T) {
		var rules []rbacv1.PolicyRule
		for _, rule := range r.role.Rules {
			if !slices.Contains(rule.Verbs, "patch") {
				rules = append(rules, rule)
			}
		}
		r.setRules(t, rules)
		x.setTraffic(10) // w wakes: ebb must write "active" and may not
		waitLog(t, e, `patch deployments.apps in namespace \"shop\": deployments.apps \"w\" is forbidden: User \"`+ebbUser+
			`\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"shop\"; ebb's permissions are in deploy/02-rbac.yaml`)
	})
}

// TestDeployRBACIsMinimal shows that every rule of deploy/'s ClusterRole
// ebb is needed: with any one verb on any one resource taken away, `ebb
// serve` fails and says which verb on which resource it lacks. And it shows
// that nothing broader is granted: the rules are exactly those, and the
// ServiceAccount may do none of what ebb never does.
//
// The rules for the activator (services, endpointslices) are left to the
// activator's tests.
func TestDeployRBACIsMinimal(t *testing.T) {
	r := startRBAC(t)
	want := [][3]string{
		{"apps", "deployments", "list"}, {"apps", "deployments", "watch"}, {"apps", "deployments", "patch"},
		{"apps", "statefulsets", "list"}, {"apps", "statefulsets", "watch"}, {"apps", "statefulsets", "patch"},
	}
	// The activator's rules (services, endpointslices) are its own tests'.
	var got [][3]string
	for _, g := range grants(r.role.Rules) {
		if g[0] == "apps" {
			got = append(got, g)
		}
	}
	sortGrants := func(g [][3]string) {
		slices.SortFunc(g, func(a, b [3]string) int { return strings.Compare(strings.Join(a[:], "/"), strings.Join(b[:], "/")) })
	}
	sortGrants(got)
	sortGrants(want)
	if !slices.Equal(got, want) {
		t.Errorf("deploy/02-rbac.yaml's ClusterRole ebb grants %v in group apps, want exactly %v", got, want)
	}

	t.Run("nothing broader", func(t *testing.T) {
		for _, a := range []authorizationv1.ResourceAttributes{
			{Group: "apps", Resource: "deployments", Verb: "get"},
			{Group: "apps", Resource: "deployments", Verb: "update"},
			{Group: "apps", Resource: "deployments", Verb: "create"},
			{Group: "apps", Resource: "deployments", Verb: "delete"},
			{Group: "apps", Resource: "deployments", Subresource: "scale", Verb: "patch"},
			{Group: "apps", Resource: "deployments", Subresource: "scale", Verb: "update"},
			{Group: "apps", Resource: "deployments", Subresource: "status", Verb: "patch"},
			{Group: "apps", Resource: "statefulsets", Verb: "update"},
			{Group: "apps", Resource: "statefulsets", Subresource: "scale", Verb: "patch"},
			{Group: "apps", Resource: "daemonsets", Verb: "list"},
			{Group: "", Resource: "secrets", Verb: "get"},
			{Group: "", Resource: "configmaps", Verb: "list"},
			{Group: "", Resource: "pods", Verb: "delete"},
			{Group: "", Resource: "pods", Subresource: "exec", Verb: "create"},
			{Group: "keda.sh", Resource: "scaledobjects", Verb: "list"},
			{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verb: "update"},
		} {
			a.Namespace = "shop"
			if r.review(t, a) {
				t.Errorf("%s may %s %s/%s (%s): deploy/ grants more than ebb uses", ebbUser, a.Verb, a.Group, a.Resource+"/"+a.Subresource, a.Namespace)
			}
		}
	})

	x := startExporter(t)
	for i, g := range want {
		verb, resource := g[2], g[1]
		t.Run("without "+verb+" "+resource, func(t *testing.T) {
			var rules []rbacv1.PolicyRule
			for _, rule := range r.role.Rules {
				for _, v := range rule.Verbs {
					for _, res := range rule.Resources {
						if v != verb || res != resource {
							rules = append(rules, rbacv1.PolicyRule{APIGroups: rule.APIGroups, Resources: []string{res}, Verbs: []string{v}})
						}
					}
				}
			}
			r.setRules(t, rules)
			defer r.setRules(t, r.role.Rules)
			// A workload of each kind, new to ebb: its state must be written.
			name := "min-" + strconv.Itoa(i)
			r.deployment(t, name+"-d", nil)
			r.statefulSet(t, name+"-s", nil)
			if verb == "list" {
				// client-go 0.37 fills informers with a streaming list (a
				// watch with sendInitialEvents) where the API server has
				// it, as 1.36 does; list is what it falls back to, and all
				// an older API server offers. The fallback is what a
				// process of its own with WatchListClient off does.
				out := serveProcess(t, "KUBE_FEATURE_WatchListClient=false", "--prometheus-url="+startLiveWith(t, x).prom.URL,
					"--kubeconfig="+r.kubeconfig, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-format=text")
				waitOutput(t, out, `cannot list resource \"`+resource+`\" in API group \"apps\"`)
				return
			}
			e := startLiveWith(t, x, "--kubeconfig="+r.kubeconfig)
			// KEDA asks: the triggers register. The answer may be
			// Unavailable while ebb cannot read the annotations.
			for _, w := range []string{name + "-d", name + "-s"} {
				_, _ = e.client.IsActive(context.Background(), ref(w))
			}
			// The API server's refusal, quoted in ebb's log.
			waitLog(t, e, `cannot `+verb+` resource \"`+resource+`\" in API group \"apps\"`)
			e.stop(t)
		})
	}
}

// laggingTargets is a StateWriter's view of the cluster whose first read is
// an old version of the object, as an informer cache that has not caught up
// yet shows it; later reads get the object as it is.
type laggingTargets struct {
	client kubernetes.Interface
	stale  *appsv1.Deployment
	reads  atomic.Int32
}

func (l *laggingTargets) Target(key queries.WorkloadKey) (kube.Target, bool) {
	d := l.stale
	if l.reads.Add(1) > 1 {
		var err error
		if d, err = l.client.AppsV1().Deployments(key.Namespace).Get(context.Background(), key.Name, metav1.GetOptions{}); err != nil {
			return kube.Target{}, false
		}
	}
	ann := map[string]string{}
	for k, v := range d.Annotations {
		if strings.HasPrefix(k, "ebb.dev/") {
			ann[k] = v
		}
	}
	return kube.Target{Kind: kube.KindDeployment, Annotations: ann, ResourceVersion: d.ResourceVersion}, true
}

// writes is ebb_annotation_writes_total{result} in reg.
func writes(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "ebb_annotation_writes_total" && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no ebb_annotation_writes_total{result=%q}", result)
	return 0
}
