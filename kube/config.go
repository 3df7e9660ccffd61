package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent is the user agent ebb's requests to the API server carry.
const UserAgent = "ebb"

// ErrNoCluster is returned by Config when there is neither a kubeconfig nor
// an in-cluster environment: ebb then runs on trigger metadata alone.
var ErrNoCluster = errors.New("no cluster access: no kubeconfig given and not running in a cluster")

// Config returns the API server configuration: the kubeconfig file when
// kubeconfig is set, else the in-cluster service account when
// KUBERNETES_SERVICE_HOST is set, else ErrNoCluster. The user agent is
// UserAgent; a caller may append its version.
func Config(kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig != "":
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	default:
		return nil, ErrNoCluster
	}
	cfg.UserAgent = UserAgent
	return cfg, nil
}
