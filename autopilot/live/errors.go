package live

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ebbscale/ebb/kube"
)

// ErrNoMetricsAPI means the cluster serves no metrics.k8s.io API: the
// APIService that metrics-server installs is missing.
var ErrNoMetricsAPI = errors.New("metrics-server is not installed (no metrics.k8s.io API)")

// ErrNoNamespace is wrapped by the problem of a namespace that does not
// exist: `namespace "shop" does not exist`.
var ErrNoNamespace = errors.New("does not exist")

// Problem is what kept the workloads of a namespace, or their usage, from
// being read. Namespace is empty for a problem with every namespace.
type Problem struct {
	Namespace string
	Err       error
}

func (p Problem) Error() string { return p.Err.Error() }

// Resources as kube.AccessError and the messages name them.
const (
	resDeployments  = "deployments.apps"
	resStatefulSets = "statefulsets.apps"
	resReplicaSets  = "replicasets.apps"
	resPods         = "pods"
	resPodMetrics   = "pods.metrics.k8s.io"
)

// apiError turns an API server's refusal into an error a user can act on:
// a Forbidden names the verb and resource and points at ebb's RBAC.
func apiError(verb, resource, ns string, err error) error {
	if apierrors.IsForbidden(err) {
		return &kube.AccessError{Verb: verb, Resource: resource, Namespace: ns, Err: err}
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where(ns), err)
}

// metricsError classifies an error of a PodMetrics list: ErrNoMetricsAPI
// when the API is not served at all.
func metricsError(ns string, err error) error {
	switch {
	case apierrors.IsNotFound(err) || strings.Contains(err.Error(), "could not find the requested resource"):
		return ErrNoMetricsAPI
	case apierrors.IsServiceUnavailable(err):
		return fmt.Errorf("list %s %s: metrics.k8s.io is unavailable, is metrics-server running? %w", resPodMetrics, where(ns), err)
	}
	return apiError("list", resPodMetrics, ns, err)
}

func where(ns string) string {
	if ns == "" {
		return "in all namespaces"
	}
	return "in namespace " + strconv.Quote(ns)
}
