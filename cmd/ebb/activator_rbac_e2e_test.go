//go:build linux

package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// activatorResources are what the activator's rules in deploy/ are about.
var activatorResources = []string{"services", "endpointslices"}

// TestActivatorRBACIsMinimal shows that every rule deploy/ grants the
// activator is needed and that nothing broader is granted. The grants are
// exactly list and watch on Services, and get, list, watch, create, update
// and delete on EndpointSlices. With any one of them taken away, ebb, run
// as deploy/'s ServiceAccount, fails at the step that needs it and its log
// quotes the API server's refusal of that verb on that resource:
//   - watch: on start, for the informers of Services and EndpointSlices;
//   - list: the same, where client-go lists before it watches (an API
//     server without streaming lists, or WatchListClient off);
//   - create: when the workload goes idle and ebb adds its slice;
//   - update: when the Service's port changes while ebb's slice is up;
//   - delete: when the workload has a ready endpoint of its own again;
//   - get: when a slice of ebb's name exists that its cache does not hold
//     (the create is refused as AlreadyExists and ebb reads the live one).
func TestActivatorRBACIsMinimal(t *testing.T) {
	a := startActivatorEnv(t, controlplane.Config{}, 1)
	ctx := context.Background()
	r := saRBAC{client: a.client, namespace: "ebb-system", name: "ebb"}
	roles := r.boundRoles(t)
	want := [][3]string{
		{"", "services", "list"}, {"", "services", "watch"},
		{"discovery.k8s.io", "endpointslices", "get"}, {"discovery.k8s.io", "endpointslices", "list"},
		{"discovery.k8s.io", "endpointslices", "watch"}, {"discovery.k8s.io", "endpointslices", "create"},
		{"discovery.k8s.io", "endpointslices", "update"}, {"discovery.k8s.io", "endpointslices", "delete"},
	}
	var got [][3]string
	for _, g := range roles.grants() {
		if slices.Contains(activatorResources, g[1]) {
			got = append(got, g)
		}
	}
	byName := func(a, b [3]string) int { return strings.Compare(strings.Join(a[:], "/"), strings.Join(b[:], "/")) }
	slices.SortFunc(got, byName)
	slices.SortFunc(want, byName)
	if !slices.Equal(got, want) {
		t.Errorf("deploy/'s ClusterRoles grant %v on Services and EndpointSlices, want exactly %v", got, want)
	}
	t.Run("nothing broader", func(t *testing.T) {
		for _, at := range []authorizationv1.ResourceAttributes{
			{Resource: "services", Verb: "get"},
			{Resource: "services", Verb: "create"},
			{Resource: "services", Verb: "update"},
			{Resource: "services", Verb: "patch"},
			{Resource: "services", Verb: "delete"},
			{Resource: "services", Subresource: "status", Verb: "update"},
			{Resource: "endpoints", Verb: "list"},
			{Resource: "endpoints", Verb: "create"},
			{Resource: "pods", Verb: "delete"}, // list and get are ebb-autopilot's
			{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "patch"},
			{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "deletecollection"},
		} {
			at.Namespace = actNS
			if r.may(t, at) {
				t.Errorf("%s may %s %s/%s: deploy/ grants the activator more than it uses", ebbUser, at.Verb, at.Group, at.Resource+"/"+at.Subresource)
			}
		}
	})

	without := func(t *testing.T, group, resource, verb string) {
		t.Helper()
		roles.without(t, r, [3]string{group, resource, verb})
	}
	restore := func(t *testing.T) { t.Helper(); roles.without(t, r, [3]string{}) }
	refused := func(verb, resource, group string) string {
		return `cannot ` + verb + ` resource \"` + resource + `\" in API group \"` + group + `\"`
	}
	stream := a.waitIdle(t)
	a.waitSlice(t, true, 30*time.Second) // with every rule: proxy mode

	t.Run("without update endpointslices", func(t *testing.T) {
		without(t, "discovery.k8s.io", "endpointslices", "update")
		renamePort(t, a, "web") // ebb's slice must follow the Service's port name
		waitLog(t, a.e, refused("update", "endpointslices", "discovery.k8s.io"))
		restore(t)
		waitSlicePort(t, a, "web")
	})

	t.Run("without delete endpointslices", func(t *testing.T) {
		without(t, "discovery.k8s.io", "endpointslices", "delete")
		a.x.setTraffic(10)
		if !stream.next(t, 30*time.Second) {
			t.Fatal("StreamIsActive sent false again instead of waking")
		}
		a.publishReady(t, a.netns.PeerIP.String())
		waitLog(t, a.e, refused("delete", "endpointslices", "discovery.k8s.io"))
		if a.slice(t) == nil {
			t.Fatal("ebb's slice is gone although ebb may not delete it")
		}
		restore(t)
		a.waitSlice(t, false, 30*time.Second)
	})

	t.Run("without create endpointslices", func(t *testing.T) {
		without(t, "discovery.k8s.io", "endpointslices", "create")
		a.x.setTraffic(0)
		waitLog(t, a.e, refused("create", "endpointslices", "discovery.k8s.io"))
		if a.slice(t) != nil {
			t.Fatal("ebb's slice exists although ebb may not create it")
		}
		// Idle, but with no slice in front of its Service: ebb keeps
		// answering active rather than let KEDA remove the last pod.
		for range 3 {
			if !a.e.isActive(t, liveRef) {
				t.Fatal("IsActive false while ebb may not put the activator in front of shop/w")
			}
			time.Sleep(liveInterval)
		}
		// create stays refused for the next step.
	})

	t.Run("without get endpointslices", func(t *testing.T) {
		// While ebb may not create its slice, a slice of its name appears
		// that its cache does not hold: without the kubernetes.io/
		// service-name label, its informer never sees it. With create
		// back but not get, ebb's create is AlreadyExists and it may not
		// read the slice that is there.
		stray := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: actEbbSlice, Namespace: actNS},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}}},
		}
		if _, err := a.client.DiscoveryV1().EndpointSlices(actNS).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		without(t, "discovery.k8s.io", "endpointslices", "get")
		waitLog(t, a.e, refused("get", "endpointslices", "discovery.k8s.io"))
		restore(t)
		// ebb reads the stray slice and makes it its own (on the retry
		// after its back-off), and only then answers idle.
		deadline := time.Now().Add(90 * time.Second)
		for sl := a.slice(t); sl == nil || sl.Labels[discoveryv1.LabelManagedBy] != "ebb.dev"; sl = a.slice(t) {
			if time.Now().After(deadline) {
				t.Fatalf("the stray slice was not taken over within 90s: %+v\nebb's log:\n%s", sl, a.e.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if stream.next(t, 30*time.Second) {
			t.Fatal("StreamIsActive sent true again instead of idle once ebb's slice was in place")
		}
	})

	a.e.stop(t)
	for _, c := range []struct{ group, resource string }{{"", "services"}, {"discovery.k8s.io", "endpointslices"}} {
		t.Run("without watch "+c.resource, func(t *testing.T) {
			without(t, c.group, c.resource, "watch")
			defer restore(t)
			// ebb does not start: it would hold no request it could switch.
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			args := append([]string{"--prometheus-url=" + a.e.prom.URL, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-format=text"}, a.flags...)
			err := runServe(ctx, args, &syncBuffer{}, serveDeps{getenv: func(string) string { return "" }, kickGap: time.Millisecond})
			// The API server's refusal, quoted whole. (Which of list or
			// watch client-go was doing when it was refused depends on
			// whether it fell back from a streaming list.)
			want := ` is forbidden: User "` + ebbUser + `" cannot watch resource "` + c.resource + `" in API group "` + c.group +
				`" at the cluster scope; ebb's permissions are in deploy/02-rbac.yaml`
			if err == nil || !strings.HasPrefix(err.Error(), "activator switcher: ") || !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("ebb serve without watch on %s: %v, want an error of the activator switcher ending %q", c.resource, err, want)
			}
		})
		t.Run("without list "+c.resource, func(t *testing.T) {
			without(t, c.group, c.resource, "list")
			defer restore(t)
			// As TestDeployRBACIsMinimal: client-go fills an informer with
			// a streaming watch where the API server has one; list is its
			// fallback, which a process with WatchListClient off takes.
			args := append([]string{"--prometheus-url=" + a.e.prom.URL, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-format=text"}, a.flags...)
			out := serveProcess(t, "KUBE_FEATURE_WatchListClient=false", args...)
			waitOutput(t, out, refused("list", c.resource, c.group))
		})
	}
}

// renamePort renames the port of Service shop/w.
func renamePort(t *testing.T, a *actEnv, name string) {
	t.Helper()
	svcs := a.client.CoreV1().Services(actNS)
	svc, err := svcs.Get(context.Background(), actWorkload, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports[0].Name = name
	if _, err := svcs.Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSlicePort waits until ebb's slice has one port, named name.
func waitSlicePort(t *testing.T, a *actEnv, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sl := a.slice(t)
		if sl != nil && len(sl.Ports) == 1 && ptr.Deref(sl.Ports[0].Name, "") == name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ebb's slice's ports are not [%s] after 30s: %+v\nebb's log:\n%s", name, sl, a.e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterRoles are the ClusterRoles bound to ebb's ServiceAccount, as
// deploy/ creates them, by name.
type clusterRoles map[string]*rbacv1.ClusterRole

// saRBAC is a ServiceAccount's RBAC on a real API server, read and
// changed through an admin client.
type saRBAC struct {
	client          kubernetes.Interface // admin
	namespace, name string               // the ServiceAccount
}

// user is the ServiceAccount as RBAC names it.
func (r saRBAC) user() string { return "system:serviceaccount:" + r.namespace + ":" + r.name }

// may asks the API server whether the ServiceAccount may do a (in
// namespace shop when a names none).
func (r saRBAC) may(t *testing.T, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	if a.Namespace == "" {
		a.Namespace = "shop"
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               r.user(),
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + r.namespace, "system:authenticated"},
		ResourceAttributes: &a,
	}}
	got, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status.Allowed
}

// boundRoles reads the ClusterRoles that ClusterRoleBindings bind to the
// ServiceAccount, however deploy/ or the chart split the rules among them.
func (r saRBAC) boundRoles(t *testing.T) clusterRoles {
	t.Helper()
	client := r.client
	ctx := context.Background()
	bindings, err := client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roles := clusterRoles{}
	for _, b := range bindings.Items {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Namespace == r.namespace && s.Name == r.name
		}) {
			continue
		}
		cr, err := client.RbacV1().ClusterRoles().Get(ctx, b.RoleRef.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		roles[cr.Name] = cr
	}
	if len(roles) == 0 {
		t.Fatalf("no ClusterRole is bound to %s/%s", r.namespace, r.name)
	}
	return roles
}

// grants lists what all the roles allow as (group, resource, verb).
func (c clusterRoles) grants() [][3]string {
	var out [][3]string
	for _, cr := range c {
		out = append(out, grants(cr.Rules)...)
	}
	return out
}

// without sets every role's rules to its own grants but drop, one rule per
// grant (all of them when drop is zero: the roles as deploy/ has them), and
// waits until the authorizer answers by them.
func (c clusterRoles) without(t *testing.T, r saRBAC, drop [3]string) {
	t.Helper()
	ctx := context.Background()
	api := r.client.RbacV1().ClusterRoles()
	for name, orig := range c {
		rules := orig.Rules
		if drop != ([3]string{}) {
			rules = nil
			for _, g := range grants(orig.Rules) {
				if g != drop {
					rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{g[0]}, Resources: []string{g[1]}, Verbs: []string{g[2]}})
				}
			}
		}
		cr, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cr.Rules = rules
		if _, err := api.Update(ctx, cr, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range c.grants() {
		for r.may(t, authorizationv1.ResourceAttributes{Group: g[0], Resource: g[1], Verb: g[2]}) == (g == drop) {
			if time.Now().After(deadline) {
				t.Fatalf("the authorizer did not follow the new rules for %v within 10s", g)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
