package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Config says what to run besides etcd and the API server.
type Config struct {
	// ControllerManager runs kube-controller-manager (Deployments get
	// ReplicaSets, garbage collection works). No kubelet runs: pods stay
	// Pending.
	ControllerManager bool
	// KEDACRDs applies KEDA's CRDs (ScaledObject, ScaledJob,
	// TriggerAuthentication, ...) without running the operator.
	KEDACRDs bool
	// KEDA applies KEDA's CRDs and runs the KEDA operator out of cluster,
	// in namespace KEDANamespace. StartKEDA starts it later instead.
	KEDA bool
	// MonitoringCRDs applies the Prometheus Operator's ServiceMonitor and
	// PrometheusRule CRDs (those kube-prometheus-stack installs).
	MonitoringCRDs bool
	// CertManagerCRDs applies cert-manager's Certificate, Issuer and
	// ClusterIssuer CRDs (no cert-manager runs: nothing is issued).
	CertManagerCRDs bool
	// Binaries defaults to DefaultBinaries().
	Binaries *Binaries
}

// KEDANamespace is the namespace the KEDA operator keeps its own objects in.
const KEDANamespace = "keda"

// startTimeout bounds the start of each process.
const startTimeout = 90 * time.Second

// ControlPlane is a running control plane. Stop ends every process it
// started.
type ControlPlane struct {
	// Admin is a client config of an admin (group system:masters).
	Admin *rest.Config
	// Dir holds the PKI, the kubeconfigs, etcd's data and every process's
	// log (NAME.log).
	Dir string
	// AdminKubeconfig is a kubeconfig file of Admin.
	AdminKubeconfig string

	pki   *pki
	bins  Binaries
	procs []*process // in start order
	keep  bool
	keda  bool // the operator runs

	mu     sync.Mutex
	mapper *restmapper.DeferredDiscoveryRESTMapper
	crds   map[string]bool // the optional CRD sets applied, by folder
}

// Start starts etcd and the API server, then what opts ask for, and
// returns once all are ready. An error wraps the tail of the log of the
// process that did not come up; one that wraps a missing binary satisfies
// IsMissingBinary.
func Start(ctx context.Context, opts Config) (_ *ControlPlane, err error) {
	bins := DefaultBinaries()
	if opts.Binaries != nil {
		bins = *opts.Binaries
	}
	if err := bins.check(opts); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ebb-controlplane-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: dir, bins: bins}
	defer func() {
		if err != nil {
			cp.keep = true // the logs explain the failure
			cp.Stop()
		}
	}()
	if cp.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	etcdURL, err := cp.startEtcd(ctx, bins.Etcd, ports[0], ports[1])
	if err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, bins.APIServer, etcdURL); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if err := cp.startControllerManager(ctx, bins.ControllerManager); err != nil {
			return nil, err
		}
	}
	if opts.KEDACRDs && !opts.KEDA {
		if err := cp.ApplyFiles(ctx, bins.KEDACRDs); err != nil {
			return nil, fmt.Errorf("KEDA's CRDs: %w", err)
		}
	}
	if opts.KEDA {
		if err := cp.StartKEDA(ctx); err != nil {
			return nil, err
		}
	}
	if err := cp.ApplyCRDs(ctx, Config{MonitoringCRDs: opts.MonitoringCRDs, CertManagerCRDs: opts.CertManagerCRDs}); err != nil {
		return nil, err
	}
	return cp, nil
}

// ApplyCRDs applies the optional CRD sets opts asks for (KEDACRDs,
// MonitoringCRDs, CertManagerCRDs) that are not applied yet, and waits
// until they are established. Other fields of opts are ignored. An error
// for a folder that is missing satisfies IsMissingBinary.
func (cp *ControlPlane) ApplyCRDs(ctx context.Context, opts Config) error {
	for _, set := range []struct {
		on         bool
		dir, which string
	}{
		{opts.KEDACRDs, cp.bins.KEDACRDs, "KEDA's CRDs"},
		{opts.MonitoringCRDs, cp.bins.MonitoringCRDs, "the Prometheus Operator's CRDs"},
		{opts.CertManagerCRDs, cp.bins.CertManagerCRDs, "cert-manager's CRDs"},
	} {
		if !set.on {
			continue
		}
		cp.mu.Lock()
		done := cp.crds[set.dir]
		cp.mu.Unlock()
		if done {
			continue
		}
		if _, err := os.Stat(set.dir); err != nil {
			return fmt.Errorf("%w %s: run `%s` to fetch them (nothing when cached)", errMissing, set.dir, BuildCommand)
		}
		if err := cp.ApplyFiles(ctx, set.dir); err != nil {
			return fmt.Errorf("%s: %w", set.which, err)
		}
		cp.mu.Lock()
		if cp.crds == nil {
			cp.crds = map[string]bool{}
		}
		cp.crds[set.dir] = true
		cp.mu.Unlock()
	}
	return nil
}

// StartKEDA applies KEDA's CRDs and starts the KEDA operator, unless it
// runs already. It is not safe for concurrent use; Shared.KEDA is.
func (cp *ControlPlane) StartKEDA(ctx context.Context) error {
	if cp.keda {
		return nil
	}
	if err := cp.bins.check(Config{KEDA: true}); err != nil {
		return err
	}
	if err := cp.startKEDA(ctx, cp.bins); err != nil {
		return err
	}
	cp.keda = true
	return nil
}

// IsMissingBinary reports whether err is Start's error for a binary that
// `make test-deps` has not built.
func IsMissingBinary(err error) bool { return errors.Is(err, errMissing) }

// Stop ends the processes in reverse start order and removes Dir, unless
// the start failed or a process did not stop cleanly, when it keeps Dir for
// its logs. It returns the first error.
func (cp *ControlPlane) Stop() error {
	var first error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		if err := cp.procs[i].stop(); err != nil {
			cp.keep = true
			if first == nil {
				first = fmt.Errorf("%w (logs in %s)", err, cp.Dir)
			}
		}
	}
	cp.procs = nil
	if !cp.keep && os.Getenv("EBB_CONTROLPLANE_KEEP") == "" {
		os.RemoveAll(cp.Dir)
	}
	return first
}

func (cp *ControlPlane) startEtcd(ctx context.Context, bin string, clientPort, peerPort int) (string, error) {
	client := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	p, err := spawn(cp.Dir, "etcd", bin, []string{
		"--name=default",
		"--data-dir=" + filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync", "--log-level=warn",
	}, nil)
	if err != nil {
		return "", err
	}
	cp.procs = append(cp.procs, p)
	return client, p.waitHTTP(ctx, client+"/health", "", nil, startTimeout)
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, bin, etcdURL string) error {
	token, err := randomToken()
	if err != nil {
		return err
	}
	tokens := filepath.Join(cp.pki.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(ports[0])
	p, err := spawn(cp.Dir, "kube-apiserver", bin, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[0]),
		"--tls-cert-file=" + cp.pki.path("tls.crt"), "--tls-private-key-file=" + cp.pki.path("tls.key"),
		"--client-ca-file=" + cp.pki.path("ca.crt"), "--token-auth-file=" + tokens,
		"--service-account-key-file=" + cp.pki.path("sa.pub"),
		"--service-account-signing-key-file=" + cp.pki.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}, nil)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	if err := p.waitHTTP(ctx, host+"/readyz", token, cp.pki.caPEM, startTimeout); err != nil {
		return err
	}
	cp.Admin = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.pki.caPEM},
		QPS:             200,
		Burst:           400,
	}
	cp.AdminKubeconfig = filepath.Join(cp.Dir, "admin.kubeconfig")
	return WriteKubeconfig(cp.Admin, cp.AdminKubeconfig)
}

func (cp *ControlPlane) startControllerManager(ctx context.Context, bin string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	p, err := spawn(cp.Dir, "kube-controller-manager", bin, []string{
		"--kubeconfig=" + cp.AdminKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[0]),
		"--tls-cert-file=" + cp.pki.path("tls.crt"), "--tls-private-key-file=" + cp.pki.path("tls.key"),
		// What objects without a kubelet or a cloud need: ReplicaSets and
		// their pods for Deployments, owner references, namespaces.
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,garbage-collector-controller,namespace-controller,endpointslice-controller",
		"--service-account-private-key-file=" + cp.pki.path("sa.key"),
		"--root-ca-file=" + cp.pki.path("ca.crt"),
		"--cluster-signing-cert-file=" + cp.pki.path("ca.crt"),
		"--cluster-signing-key-file=" + cp.pki.path("ca.key"),
		"--use-service-account-credentials=false",
	}, nil)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	// /healthz answers anyone (--authorization-always-allow-paths).
	return p.waitHTTP(ctx, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz", "", cp.pki.caPEM, startTimeout)
}

func (cp *ControlPlane) startKEDA(ctx context.Context, bins Binaries) error {
	if err := cp.ApplyFiles(ctx, bins.KEDACRDs); err != nil {
		return fmt.Errorf("KEDA's CRDs: %w", err)
	}
	if err := cp.EnsureNamespace(ctx, KEDANamespace); err != nil {
		return err
	}
	// The operator's metrics gRPC service loads ca.crt, tls.crt and tls.key
	// from --cert-dir and the manager exits without them; --ca-dir holds
	// certificates only.
	certs, cas := filepath.Join(cp.Dir, "keda-certs"), filepath.Join(cp.Dir, "keda-ca")
	for _, d := range []string{certs, cas} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for _, f := range []struct{ from, to string }{
		{"ca.crt", filepath.Join(certs, "ca.crt")}, {"tls.crt", filepath.Join(certs, "tls.crt")},
		{"tls.key", filepath.Join(certs, "tls.key")}, {"ca.crt", filepath.Join(cas, "ca.crt")},
	} {
		b, err := os.ReadFile(cp.pki.path(f.from))
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.to, b, 0o600); err != nil {
			return err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	p, err := spawn(cp.Dir, "keda-operator", bins.KEDA, []string{
		"--leader-elect=false", "--enable-cert-rotation=false",
		"--cert-dir=" + certs, "--ca-dir=" + cas,
		"--metrics-bind-address=" + addr(0), "--health-probe-bind-address=" + addr(1),
		"--metrics-service-bind-address=" + addr(2),
		"--zap-log-level=info",
	}, []string{
		"KUBECONFIG=" + cp.AdminKubeconfig, "WATCH_NAMESPACE=",
		"KEDA_CLUSTER_OBJECT_NAMESPACE=" + KEDANamespace, "POD_NAMESPACE=" + KEDANamespace,
	})
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	return p.waitHTTP(ctx, "http://"+addr(1)+"/readyz", "", nil, startTimeout)
}

// Log returns the last few KiB of the log of the process named name
// (etcd, kube-apiserver, kube-controller-manager, keda-operator).
func (cp *ControlPlane) Log(name string) string {
	return (&process{name: name, logPath: filepath.Join(cp.Dir, name+".log")}).tail()
}

// EnsureNamespace creates namespace ns unless it exists.
func (cp *ControlPlane) EnsureNamespace(ctx context.Context, ns string) error {
	c, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		return err
	}
	_, err = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// ServiceAccount returns a client config that authenticates as the
// ServiceAccount namespace/name, creating both unless they exist, with a
// token from the TokenRequest API valid for an hour. RBAC grants it nothing
// until a test binds it a role.
func (cp *ControlPlane) ServiceAccount(ctx context.Context, namespace, name string) (*rest.Config, error) {
	if err := cp.EnsureNamespace(ctx, namespace); err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		return nil, err
	}
	sas := c.CoreV1().ServiceAccounts(namespace)
	_, err = sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create serviceaccount %s/%s: %w", namespace, name, err)
	}
	hour := int64(3600)
	tr, err := sas.CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of serviceaccount %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(cp.Admin)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// WriteKubeconfig writes a kubeconfig file of cfg's server, CA and bearer
// token to path, for programs that take --kubeconfig.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	return clientcmd.WriteToFile(*kc, path)
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
