package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
)

// The versions `make test-deps` builds (test/tools/*/go.mod); a test checks
// that they agree.
const (
	KubernetesVersion = "v1.36.3"
	EtcdVersion       = "v3.6.8"
	KEDAVersion       = "v2.21.0"
	// The modules whose CRDs the chart's optional objects need: the
	// Prometheus Operator's (ServiceMonitor, PrometheusRule; what
	// kube-prometheus-stack installs) and cert-manager's (Certificate,
	// Issuer, ClusterIssuer). test/tools/build.sh copies them at these
	// versions.
	PrometheusOperatorVersion = "v0.85.0"
	// HelmVersion is the helm the chart's tests run (test/tools/helm).
	HelmVersion        = "v4.3.2"
	CertManagerVersion = "v1.21.2"
)

// BuildCommand is what builds the binaries into the cache.
const BuildCommand = "make test-deps"

// ToolsDirEnv names the variable that overrides the cache folder.
const ToolsDirEnv = "EBB_TOOLS_DIR"

// Binaries are the paths of the control plane's programs and of KEDA's CRDs.
type Binaries struct {
	Etcd, APIServer, ControllerManager, KEDA string
	// KEDACRDs is the folder of KEDA's CRD manifests (config/crd/bases).
	KEDACRDs string
	// MonitoringCRDs is the folder of the Prometheus Operator's
	// ServiceMonitor and PrometheusRule CRDs
	// (example/prometheus-operator-crd).
	MonitoringCRDs string
	// CertManagerCRDs is the folder of cert-manager's Certificate, Issuer
	// and ClusterIssuer CRDs (deploy/crds).
	CertManagerCRDs string
	// Helm is the helm binary the chart's tests run.
	Helm string
}

// ToolsDir returns the cache folder: $EBB_TOOLS_DIR, or ebb-tools in the
// user's cache folder ($HOME/.cache/ebb-tools on Linux).
func ToolsDir() string {
	if d := os.Getenv(ToolsDirEnv); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ebb-tools")
	}
	return filepath.Join(os.TempDir(), "ebb-tools")
}

// DefaultBinaries returns the paths in ToolsDir, named by version as
// test/tools/build.sh writes them.
func DefaultBinaries() Binaries {
	d := ToolsDir()
	return Binaries{
		Etcd:              filepath.Join(d, "etcd-"+EtcdVersion),
		APIServer:         filepath.Join(d, "kube-apiserver-"+KubernetesVersion),
		ControllerManager: filepath.Join(d, "kube-controller-manager-"+KubernetesVersion),
		KEDA:              filepath.Join(d, "keda-operator-"+KEDAVersion),
		KEDACRDs:          filepath.Join(d, "keda-crds-"+KEDAVersion),
		MonitoringCRDs:    filepath.Join(d, "prometheus-operator-crds-"+PrometheusOperatorVersion),
		CertManagerCRDs:   filepath.Join(d, "cert-manager-crds-"+CertManagerVersion),
		Helm:              filepath.Join(d, "helm-"+HelmVersion),
	}
}

// check returns an error wrapping errMissing for the first path of those
// opts need that does not exist.
func (b Binaries) check(opts Config) error {
	paths := []string{b.Etcd, b.APIServer}
	if opts.ControllerManager {
		paths = append(paths, b.ControllerManager)
	}
	if opts.KEDA {
		paths = append(paths, b.KEDA)
	}
	if opts.KEDA || opts.KEDACRDs {
		paths = append(paths, b.KEDACRDs)
	}
	if opts.MonitoringCRDs {
		paths = append(paths, b.MonitoringCRDs)
	}
	if opts.CertManagerCRDs {
		paths = append(paths, b.CertManagerCRDs)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w %s: run `%s` to build it (about 25 minutes on a cold cache, nothing when cached)", errMissing, p, BuildCommand)
		}
	}
	return nil
}
