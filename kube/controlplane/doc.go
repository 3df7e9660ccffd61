// Package controlplane runs a real Kubernetes control plane on loopback
// ports for tests: etcd, kube-apiserver with RBAC and generated PKI, and, on
// request, kube-controller-manager and the KEDA operator out of cluster with
// KEDA's CRDs applied server-side.
//
// The binaries are the ones `make test-deps` builds into a per-machine cache
// (see Binaries). A test package shares one control plane: declare a Shared,
// call its Main from TestMain, and its Get from each test, which starts the
// control plane on first use, and skips when a binary is missing (fails
// under CI=true) with the command that builds them.
package controlplane
