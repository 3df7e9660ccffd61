#!/usr/bin/env bash
# build.sh builds the control plane that the Kubernetes tests run against
# (etcd, kube-apiserver, kube-controller-manager, the KEDA operator) and the
# helm that the chart's tests run, from the wrapper modules beside it, and
# copies KEDA's CRDs from the same module version. Everything goes into a
# per-machine cache outside the repository, keyed by version, so a second run
# builds nothing:
#
#   ${EBB_TOOLS_DIR:-$HOME/.cache/ebb-tools}/
#     etcd-v3.6.8  kube-apiserver-v1.36.3  kube-controller-manager-v1.36.3
#     keda-operator-v2.21.0  keda-crds-v2.21.0/*.yaml  helm-v4.3.2
#     prometheus-operator-crds-v0.85.0/*.yaml  cert-manager-crds-v1.21.2/*.yaml
#
# The versions are the ones the wrapper modules' go.mod files require.
# A cold build takes about 25 minutes on two cores; builds run at nice 19.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${EBB_TOOLS_DIR:-$HOME/.cache/ebb-tools}"
mkdir -p "$dir"

# One build at a time per cache: a second caller waits, then finds the files.
exec 9>"$dir/.lock"
flock 9

export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

modversion() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# build MODULEDIR OUT LDFLAGS PACKAGE builds PACKAGE into OUT unless OUT is there.
build() {
	local mod="$1" out="$2" ldflags="$3" pkg="$4"
	if [ -x "$out" ]; then
		echo "cached: $out"
		return
	fi
	echo "building $(basename "$out") (nice 19; this takes minutes on a cold cache)"
	local start=$SECONDS
	(cd "$mod" && nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
	mv "$out.tmp" "$out"
	echo "built $out in $((SECONDS - start)) s"
}

k8s="$(modversion "$here/kubernetes" k8s.io/kubernetes)"
etcd="$(modversion "$here/kubernetes" go.etcd.io/etcd/server/v3)"
keda="$(modversion "$here/keda" github.com/kedacore/keda/v2)"
helm="$(modversion "$here/helm" helm.sh/helm/v4)"
minor="${k8s#v1.}"
minor="${minor%%.*}"
k8sflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"

build "$here/kubernetes" "$dir/kube-apiserver-$k8s" "$k8sflags" k8s.io/kubernetes/cmd/kube-apiserver
build "$here/kubernetes" "$dir/etcd-$etcd" "-s -w" go.etcd.io/etcd/server/v3
build "$here/keda" "$dir/keda-operator-$keda" \
	"-s -w -X github.com/kedacore/keda/v2/version.Version=$keda" \
	github.com/kedacore/keda/v2/cmd/operator
build "$here/kubernetes" "$dir/kube-controller-manager-$k8s" "$k8sflags" k8s.io/kubernetes/cmd/kube-controller-manager
build "$here/helm" "$dir/helm-$helm" \
	"-s -w -X helm.sh/helm/v4/internal/version.version=$helm" \
	helm.sh/helm/v4/cmd/helm

# crds OUT MODDIR MODULE FILE... copies the CRD manifests FILE... (globs) of
# MODULE, downloaded from within MODDIR, into the folder OUT unless OUT is
# there.
crds() {
	local out="$1" moddir="$2" module="$3"
	shift 3
	if [ -d "$out" ]; then
		echo "cached: $out"
		return
	fi
	local src
	src="$(cd "$moddir" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"
	for f in "$@"; do
		cp "$src"/$f "$out.tmp/"
	done
	chmod 0644 "$out.tmp"/*.yaml
	mv "$out.tmp" "$out"
	echo "copied $(ls "$out" | wc -l) CRDs to $out"
}

crds "$dir/keda-crds-$keda" "$here/keda" github.com/kedacore/keda/v2 'config/crd/bases/*.yaml'

# The CRDs of the chart's optional objects, at the versions
# kube/controlplane/binaries.go names (a test checks that they agree). The
# modules are only downloaded (checksums verified by the go command), not
# built: ServiceMonitor and PrometheusRule from the Prometheus Operator (what
# kube-prometheus-stack installs; v0.85.0 is the newest version of its root
# module that the module proxy serves here), Certificate, Issuer and
# ClusterIssuer from cert-manager.
promop=v0.85.0
certmanager=v1.21.2
export GOFLAGS=-buildvcs=false
# Outside any module (in $dir), where -mod does not apply.
crds "$dir/prometheus-operator-crds-$promop" "$dir" "github.com/prometheus-operator/prometheus-operator@$promop" \
	example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
	example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
crds "$dir/cert-manager-crds-$certmanager" "$dir" "github.com/cert-manager/cert-manager@$certmanager" \
	deploy/crds/cert-manager.io_certificates.yaml \
	deploy/crds/cert-manager.io_issuers.yaml \
	deploy/crds/cert-manager.io_clusterissuers.yaml
