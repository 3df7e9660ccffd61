package kube

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var statefulSetsGR = schema.GroupResource{Group: "apps", Resource: "statefulsets"}

const recommendation = "ebb.dev/recommendation"

// patchActions returns the patches sent, as "resource ns/name".
func patchActions(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetVerb() == "patch" {
			out = append(out, a.GetResource().Resource+" "+p.GetNamespace()+"/"+p.GetName())
		}
	}
	return out
}

func annotationsOn(t *testing.T, c *fake.Clientset, kind Kind, ns, name string) map[string]string {
	t.Helper()
	ctx := context.Background()
	var (
		m   metav1.Object
		err error
	)
	if kind == KindDeployment {
		m, err = c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	} else {
		m, err = c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.GetAnnotations()
}

func TestPatchAnnotationsMerges(t *testing.T) {
	client := fake.NewClientset(
		deployment("shop", "web", map[string]string{"ebb.dev/idle-after": "30m", recommendation: "old"}),
		statefulSet("ml", "llm", nil),
	)
	ctx := context.Background()
	for _, tt := range []struct {
		kind     Kind
		ns, name string
		want     map[string]string
	}{
		{KindDeployment, "shop", "web", map[string]string{"ebb.dev/idle-after": "30m", recommendation: `{"severity":"ok"}`}},
		{KindStatefulSet, "ml", "llm", map[string]string{recommendation: `{"severity":"ok"}`}},
	} {
		if err := PatchAnnotations(ctx, client, tt.kind, tt.ns, tt.name, map[string]string{recommendation: `{"severity":"ok"}`}); err != nil {
			t.Fatalf("%s %s/%s: %v", tt.kind, tt.ns, tt.name, err)
		}
		if got := annotationsOn(t, client, tt.kind, tt.ns, tt.name); !maps.Equal(got, tt.want) {
			t.Errorf("%s %s/%s: annotations %v, want %v", tt.kind, tt.ns, tt.name, got, tt.want)
		}
	}
	var patches []k8stesting.PatchAction
	for _, a := range client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, p)
		}
	}
	if len(patches) != 2 {
		t.Fatalf("got %d patches, want 2", len(patches))
	}
	for _, p := range patches {
		if got := patched(t, p); !maps.Equal(got, map[string]string{recommendation: `{"severity":"ok"}`}) {
			t.Errorf("patch sets %v", got)
		}
	}
	// Nothing to set, nothing sent.
	if err := PatchAnnotations(ctx, client, KindDeployment, "shop", "web", nil); err != nil {
		t.Errorf("empty: %v", err)
	}
	if got := len(patchActions(client)); got != 2 {
		t.Errorf("an empty patch was sent: %d patches", got)
	}
}

func TestPatchAnnotationsErrors(t *testing.T) {
	ctx := context.Background()
	ann := map[string]string{recommendation: "{}"}

	t.Run("not found", func(t *testing.T) {
		err := PatchAnnotations(ctx, fake.NewClientset(), KindDeployment, "shop", "gone", ann)
		if !apierrors.IsNotFound(err) {
			t.Fatalf("got %v, want a NotFound", err)
		}
		if want := `patch deployments.apps in namespace "shop": deployments.apps "gone" not found`; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	})

	t.Run("forbidden", func(t *testing.T) {
		client := fake.NewClientset(statefulSet("ml", "llm", nil))
		client.PrependReactor("patch", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(statefulSetsGR, "llm",
				errors.New(`User "alice" cannot patch resource "statefulsets" in API group "apps" in the namespace "ml"`))
		})
		err := PatchAnnotations(ctx, client, KindStatefulSet, "ml", "llm", ann)
		var ae *AccessError
		if !errors.As(err, &ae) || ae.Verb != "patch" || ae.Resource != "statefulsets.apps" || ae.Namespace != "ml" {
			t.Fatalf("got %#v, want an AccessError for patch statefulsets.apps in ml", err)
		}
		if !apierrors.IsForbidden(err) {
			t.Error("the AccessError does not unwrap to the API server's Forbidden")
		}
		want := `patch statefulsets.apps in namespace "ml": statefulsets.apps "llm" is forbidden: User "alice" cannot patch resource "statefulsets" in API group "apps" in the namespace "ml"; ebb's permissions are in deploy/02-rbac.yaml`
		if err.Error() != want {
			t.Errorf("got %q\nwant %q", err, want)
		}
		if got := len(patchActions(client)); got != 1 {
			t.Errorf("a forbidden patch was retried: %d patches", got)
		}
	})

	t.Run("conflicts then success", func(t *testing.T) {
		client := fake.NewClientset(deployment("shop", "web", nil))
		conflicts := 2
		client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
			if conflicts > 0 {
				conflicts--
				return true, nil, apierrors.NewConflict(deploymentsGR, "web", errors.New("the object has been modified"))
			}
			return false, nil, nil
		})
		if err := PatchAnnotations(ctx, client, KindDeployment, "shop", "web", ann); err != nil {
			t.Fatal(err)
		}
		if got := len(patchActions(client)); got != 3 {
			t.Errorf("got %d patches, want 3", got)
		}
		if got := annotationsOn(t, client, KindDeployment, "shop", "web"); got[recommendation] != "{}" {
			t.Errorf("annotations %v", got)
		}
	})

	t.Run("conflicts every time", func(t *testing.T) {
		client := fake.NewClientset(deployment("shop", "web", nil))
		client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewConflict(deploymentsGR, "web", errors.New("denied by a webhook"))
		})
		err := PatchAnnotations(ctx, client, KindDeployment, "shop", "web", ann)
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `patch deployments.apps in namespace "shop": 5 conflicts in a row: `) {
			t.Errorf("got %v", err)
		}
		if got := len(patchActions(client)); got != conflictAttempts {
			t.Errorf("got %d patches, want %d", got, conflictAttempts)
		}
	})

	t.Run("unknown kind", func(t *testing.T) {
		err := PatchAnnotations(ctx, fake.NewClientset(), Kind("DaemonSet"), "shop", "web", ann)
		if err == nil || err.Error() != `patch shop/web: unknown kind "DaemonSet"` {
			t.Errorf("got %v", err)
		}
	})
}

func TestAnnotateWorkload(t *testing.T) {
	ctx := context.Background()
	ann := map[string]string{recommendation: `{"severity":"warning"}`}
	client := fake.NewClientset(deployment("shop", "web", nil), statefulSet("ml", "llm", nil))

	if kind, err := AnnotateWorkload(ctx, client, key("shop", "web"), ann); err != nil || kind != KindDeployment {
		t.Errorf("shop/web: %q, %v; want Deployment", kind, err)
	}
	if kind, err := AnnotateWorkload(ctx, client, key("ml", "llm"), ann); err != nil || kind != KindStatefulSet {
		t.Errorf("ml/llm: %q, %v; want StatefulSet", kind, err)
	}
	for _, k := range []struct {
		kind     Kind
		ns, name string
	}{{KindDeployment, "shop", "web"}, {KindStatefulSet, "ml", "llm"}} {
		if got := annotationsOn(t, client, k.kind, k.ns, k.name); !maps.Equal(got, ann) {
			t.Errorf("%s/%s: annotations %v, want %v", k.ns, k.name, got, ann)
		}
	}
	kind, err := AnnotateWorkload(ctx, client, key("shop", "gone"), ann)
	if !errors.Is(err, ErrNoWorkload) || kind != "" || err.Error() != "annotate shop/gone: no Deployment or StatefulSet of that name" {
		t.Errorf("shop/gone: %q, %v; want ErrNoWorkload", kind, err)
	}
	want := []string{
		"deployments shop/web",
		"deployments ml/llm", "statefulsets ml/llm",
		"deployments shop/gone", "statefulsets shop/gone",
	}
	if got := patchActions(client); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("patches %v, want %v", got, want)
	}
	if kind, err := AnnotateWorkload(ctx, client, key("shop", "web"), nil); err != nil || kind != "" {
		t.Errorf("nothing to set: %q, %v", kind, err)
	}
}

// RBAC is checked before existence: a forbidden Deployment patch says
// nothing about whether the workload is a StatefulSet, so that is tried too.
func TestAnnotateWorkloadForbidden(t *testing.T) {
	ctx := context.Background()
	ann := map[string]string{recommendation: "{}"}
	client := fake.NewClientset(statefulSet("ml", "llm", nil))
	client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(deploymentsGR, "x", errors.New("RBAC: access denied"))
	})
	if kind, err := AnnotateWorkload(ctx, client, key("ml", "llm"), ann); err != nil || kind != KindStatefulSet {
		t.Errorf("ml/llm: %q, %v; want StatefulSet", kind, err)
	}
	// No StatefulSet of the name: the Deployment's refusal is the answer.
	kind, err := AnnotateWorkload(ctx, client, key("ml", "other"), ann)
	var ae *AccessError
	if !errors.As(err, &ae) || kind != "" || ae.Resource != "deployments.apps" || ae.Namespace != "ml" {
		t.Fatalf("ml/other: %q, %v; want an AccessError for deployments.apps", kind, err)
	}
	if !strings.HasSuffix(err.Error(), "; ebb's permissions are in "+rbacFile) {
		t.Errorf("%q does not point at %s", err, rbacFile)
	}
	// Both forbidden: the first refusal.
	client.PrependReactor("patch", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(statefulSetsGR, "x", errors.New("RBAC: access denied"))
	})
	if _, err := AnnotateWorkload(ctx, client, key("ml", "llm"), ann); !errors.As(err, &ae) || ae.Resource != "deployments.apps" {
		t.Errorf("both forbidden: %v; want the deployments.apps AccessError", err)
	}
}
