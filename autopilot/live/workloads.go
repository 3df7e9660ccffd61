package live

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries"
)

// Kinds of workload an Inventory holds.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// annotationPrefix marks the annotations a Workload keeps.
const annotationPrefix = "ebb.dev/"

// ResourceGPU is the extended resource of NVIDIA's device plugin.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

// Container is one container of a workload's pod template and what it
// requests.
type Container struct {
	Name      string
	Resources autopilot.Resources
}

// Workload is a Deployment or a StatefulSet as the API server has it.
type Workload struct {
	Key  queries.WorkloadKey
	Kind string
	// Replicas is spec.replicas, the replicas wanted now (1 when unset).
	Replicas int
	// Annotations are the workload's ebb.dev/ annotations.
	Annotations map[string]string
	// Containers are the pod template's containers, with native sidecars
	// (init containers that restart always), which run beside them.
	Containers []Container
}

// Inventory is what the API server says exists in some namespaces and what
// it requests. Read it with ReadInventory; it is not safe for concurrent
// use.
type Inventory struct {
	client     kubernetes.Interface
	namespaces []string // as asked; empty for all
	// lists holds one list per scope (a namespace, "" for all) and kind.
	lists   map[listKey]*list
	missing map[string]error // namespaces that do not exist
}

type listKey struct{ scope, kind string }

type list struct {
	ok        bool // listed at least once
	workloads []Workload
	err       error // of the first list, if it failed
}

// ReadInventory lists the Deployments and StatefulSets of namespaces (all
// when empty). It does not fail: what it could not read is in Problems, and
// what it could is in Workloads.
func ReadInventory(ctx context.Context, client kubernetes.Interface, namespaces []string) *Inventory {
	inv := &Inventory{client: client, namespaces: slices.Clone(namespaces), lists: map[listKey]*list{}, missing: map[string]error{}}
	for _, ns := range inv.namespaces {
		// A list in a namespace that does not exist is empty, not an
		// error: ask for the namespace itself. Without the permission to,
		// the lists still say what they find.
		_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			inv.missing[ns] = fmt.Errorf("namespace %q %w", ns, ErrNoNamespace)
		}
	}
	inv.Refresh(ctx)
	return inv
}

// scopes returns the namespaces to list in, "" for all.
func (inv *Inventory) scopes() []string {
	if len(inv.namespaces) == 0 {
		return []string{""}
	}
	var out []string
	for _, ns := range inv.namespaces {
		if inv.missing[ns] == nil {
			out = append(out, ns)
		}
	}
	return out
}

// Refresh lists the workloads again: a list that succeeds replaces the
// last, one that fails keeps it, so a workload scaled or deleted since the
// first read is seen as it is now.
func (inv *Inventory) Refresh(ctx context.Context) {
	for _, scope := range inv.scopes() {
		for _, kind := range []string{KindDeployment, KindStatefulSet} {
			k := listKey{scope, kind}
			l := inv.lists[k]
			if l == nil {
				l = &list{}
				inv.lists[k] = l
			}
			ws, err := listWorkloads(ctx, inv.client, scope, kind)
			switch {
			case err == nil:
				l.ok, l.workloads, l.err = true, ws, nil
			case !l.ok:
				l.err = err
			}
		}
	}
}

func listWorkloads(ctx context.Context, client kubernetes.Interface, ns, kind string) ([]Workload, error) {
	var out []Workload
	switch kind {
	case KindDeployment:
		l, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, apiError("list", resDeployments, ns, err)
		}
		for i := range l.Items {
			d := &l.Items[i]
			out = append(out, workloadOf(kind, d.ObjectMeta, d.Spec.Replicas, d.Spec.Template.Spec))
		}
	case KindStatefulSet:
		l, err := client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, apiError("list", resStatefulSets, ns, err)
		}
		for i := range l.Items {
			s := &l.Items[i]
			out = append(out, workloadOf(kind, s.ObjectMeta, s.Spec.Replicas, s.Spec.Template.Spec))
		}
	}
	return out, nil
}

func workloadOf(kind string, meta metav1.ObjectMeta, replicas *int32, spec corev1.PodSpec) Workload {
	w := Workload{Key: queries.WorkloadKey{Namespace: meta.Namespace, Name: meta.Name}, Kind: kind, Replicas: 1}
	if replicas != nil {
		w.Replicas = int(*replicas)
	}
	for k, v := range meta.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			if w.Annotations == nil {
				w.Annotations = map[string]string{}
			}
			w.Annotations[k] = v
		}
	}
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			w.Containers = append(w.Containers, Container{Name: c.Name, Resources: resourcesOf(c.Resources)})
		}
	}
	for _, c := range spec.Containers {
		w.Containers = append(w.Containers, Container{Name: c.Name, Resources: resourcesOf(c.Resources)})
	}
	return w
}

// resourcesOf reads requests and limits in cores and bytes. A request left
// unset with a limit set is the limit, as the API server makes it in pods.
func resourcesOf(r corev1.ResourceRequirements) autopilot.Resources {
	get := func(l corev1.ResourceList, n corev1.ResourceName) float64 {
		if q, ok := l[n]; ok {
			return q.AsApproximateFloat64()
		}
		return 0
	}
	req := func(n corev1.ResourceName) float64 {
		if _, ok := r.Requests[n]; ok {
			return get(r.Requests, n)
		}
		return get(r.Limits, n)
	}
	return autopilot.Resources{
		CPURequest:    req(corev1.ResourceCPU),
		CPULimit:      get(r.Limits, corev1.ResourceCPU),
		MemoryRequest: req(corev1.ResourceMemory),
		MemoryLimit:   get(r.Limits, corev1.ResourceMemory),
		GPUs:          max(get(r.Requests, ResourceGPU), get(r.Limits, ResourceGPU)),
	}
}

// Workloads returns every workload read, by namespace and name.
func (inv *Inventory) Workloads() []Workload {
	var out []Workload
	for _, l := range inv.lists {
		out = append(out, l.workloads...)
	}
	slices.SortFunc(out, func(a, b Workload) int {
		return cmp.Or(cmp.Compare(a.Key.Namespace, b.Key.Namespace), cmp.Compare(a.Key.Name, b.Key.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// Lookup returns the workload of k. A Deployment and a StatefulSet of the
// same name are one workload to ebb (as to queries.WorkloadOfPod); the
// Deployment wins.
func (inv *Inventory) Lookup(k queries.WorkloadKey) (Workload, bool) {
	w, ok := inv.index()[k]
	return w, ok
}

// index returns the workloads by key, as Lookup chooses them.
func (inv *Inventory) index() map[queries.WorkloadKey]Workload {
	out := map[queries.WorkloadKey]Workload{}
	for _, w := range inv.Workloads() {
		if prev, ok := out[w.Key]; !ok || prev.Kind != KindDeployment {
			out[w.Key] = w
		}
	}
	return out
}

// Problems returns what could not be read, by namespace: a namespace that
// does not exist, a list the API server refused or failed.
func (inv *Inventory) Problems() []Problem {
	var out []Problem
	for ns, err := range inv.missing {
		out = append(out, Problem{Namespace: ns, Err: err})
	}
	for k, l := range inv.lists {
		if !l.ok && l.err != nil {
			out = append(out, Problem{Namespace: k.scope, Err: l.err})
		}
	}
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Err.Error(), b.Err.Error()))
	})
	return out
}

// Complete reports whether every workload of namespace ns was read: then a
// workload the inventory does not hold does not exist.
func (inv *Inventory) Complete(ns string) bool {
	if inv.missing[ns] != nil {
		return true // nothing exists there
	}
	scope := ""
	if len(inv.namespaces) > 0 {
		if !slices.Contains(inv.namespaces, ns) {
			return false
		}
		scope = ns
	}
	for _, kind := range []string{KindDeployment, KindStatefulSet} {
		if l := inv.lists[listKey{scope, kind}]; l == nil || !l.ok {
			return false
		}
	}
	return true
}

// Apply writes every workload's replicas and its containers' requests and
// limits into h, over what kube-state-metrics said: the API server is the
// source of truth for what exists and what it requests.
func (inv *Inventory) Apply(h *autopilot.History) {
	for _, w := range inv.index() {
		h.SetReplicas(w.Key, w.Replicas)
		for _, c := range w.Containers {
			h.SetResources(autopilot.ContainerRef{Workload: w.Key, Container: c.Name}, c.Resources)
		}
	}
}
