package live

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries"
)

type podKey struct{ namespace, name string }

// owner is a listed pod's workload; ok is false for a pod of no Deployment
// or StatefulSet (a DaemonSet's, a Job's, a bare pod).
type owner struct {
	key queries.WorkloadKey
	ok  bool
}

// owners maps pods to the workload that owns them: Pod -> ReplicaSet ->
// Deployment, or Pod -> StatefulSet, from the pods and ReplicaSets listed
// in a scope (a namespace, "" for all). A pod the lists do not explain is
// mapped by its name, as queries.WorkloadOfPod does for Prometheus.
type owners struct {
	client kubernetes.Interface
	known  func(queries.WorkloadKey) bool

	pods       map[podKey]owner                          // every pod listed
	running    map[queries.WorkloadKey][]podKey          // listed pods not yet finished
	containers map[podKey]map[string]autopilot.Resources // the listed pods' containers
	rsOwner    map[podKey]string                         // ReplicaSet -> Deployment
	listedAt   map[string]int                            // scope -> sample of the last list
	denied     map[string]bool                           // scope -> a list was refused
	warnings   []error
}

func newOwners(client kubernetes.Interface, known func(queries.WorkloadKey) bool) *owners {
	return &owners{
		client: client, known: known,
		pods: map[podKey]owner{}, running: map[queries.WorkloadKey][]podKey{},
		containers: map[podKey]map[string]autopilot.Resources{},
		rsOwner:    map[podKey]string{}, listedAt: map[string]int{}, denied: map[string]bool{},
	}
}

// workloadOf returns the workload of a pod in scope; sample numbers the
// current sample, so that a scope is listed at most once per sample.
func (o *owners) workloadOf(ctx context.Context, scope string, sample int, pod podKey) (queries.WorkloadKey, bool) {
	if w, ok := o.pods[pod]; ok {
		return w.key, w.ok && o.known(w.key)
	}
	// A pod not listed yet is new: list again, once per sample.
	if last, ok := o.listedAt[scope]; !o.denied[scope+"/"+resPods] && (!ok || last < sample) {
		o.list(ctx, scope, sample)
		if w, ok := o.pods[pod]; ok {
			return w.key, w.ok && o.known(w.key)
		}
	}
	k := queries.WorkloadKey{Namespace: pod.namespace, Name: queries.WorkloadOfPod(pod.name)}
	return k, o.known(k)
}

// list reads the ReplicaSets and pods of scope. A refusal is a warning,
// once per scope and resource: pods are then mapped by their names.
func (o *owners) list(ctx context.Context, scope string, sample int) {
	o.listedAt[scope] = sample
	warn := func(resource string, err error) {
		if !o.denied[scope+"/"+resource] {
			o.denied[scope+"/"+resource] = true
			o.warnings = append(o.warnings, err)
		}
	}
	rss, err := o.client.AppsV1().ReplicaSets(scope).List(ctx, metav1.ListOptions{})
	if err != nil {
		warn(resReplicaSets, apiError("list", resReplicaSets, scope, err))
	} else {
		for _, rs := range rss.Items {
			if c := metav1.GetControllerOf(&rs); c != nil && c.Kind == KindDeployment {
				o.rsOwner[podKey{rs.Namespace, rs.Name}] = c.Name
			}
		}
	}
	pods, err := o.client.CoreV1().Pods(scope).List(ctx, metav1.ListOptions{})
	if err != nil {
		warn(resPods, apiError("list", resPods, scope, err))
		return
	}
	for k, ps := range o.running {
		if scope == "" || k.Namespace == scope {
			o.running[k] = ps[:0]
		}
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		k, ok := o.ownerOf(p)
		pk := podKey{p.Namespace, p.Name}
		o.pods[pk] = owner{k, ok}
		if !ok {
			continue
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			o.running[k] = append(o.running[k], pk)
		}
		cs := map[string]autopilot.Resources{}
		for _, c := range p.Spec.Containers {
			cs[c.Name] = resourcesOf(c.Resources)
		}
		for _, c := range p.Spec.InitContainers {
			cs[c.Name] = resourcesOf(c.Resources)
		}
		o.containers[pk] = cs
	}
}

// ownerOf follows a pod's controller reference to its Deployment or
// StatefulSet. A ReplicaSet that was not listed is mapped by its name, the
// Deployment's name and the pod template's hash.
func (o *owners) ownerOf(p *corev1.Pod) (queries.WorkloadKey, bool) {
	c := metav1.GetControllerOf(p)
	if c == nil {
		return queries.WorkloadKey{}, false
	}
	switch c.Kind {
	case KindStatefulSet:
		return queries.WorkloadKey{Namespace: p.Namespace, Name: c.Name}, true
	case "ReplicaSet":
		if d, ok := o.rsOwner[podKey{p.Namespace, c.Name}]; ok {
			return queries.WorkloadKey{Namespace: p.Namespace, Name: d}, true
		}
		if i := strings.LastIndexByte(c.Name, '-'); i > 0 {
			return queries.WorkloadKey{Namespace: p.Namespace, Name: c.Name[:i]}, true
		}
	}
	return queries.WorkloadKey{}, false
}
