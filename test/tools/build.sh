#!/usr/bin/env bash
# build.sh builds the control plane that the Kubernetes tests run against
# (etcd, kube-apiserver, kube-controller-manager, the KEDA operator) from the
# wrapper modules beside it, and copies KEDA's CRDs from the same module
# version. Everything goes into a per-machine cache outside the repository,
# keyed by version, so a second run builds nothing:
#
#   ${EBB_TOOLS_DIR:-$HOME/.cache/ebb-tools}/
#     etcd-v3.6.8  kube-apiserver-v1.36.3  kube-controller-manager-v1.36.3
#     keda-operator-v2.21.0  keda-crds-v2.21.0/*.yaml
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
minor="${k8s#v1.}"
minor="${minor%%.*}"
k8sflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"

build "$here/kubernetes" "$dir/kube-apiserver-$k8s" "$k8sflags" k8s.io/kubernetes/cmd/kube-apiserver
build "$here/kubernetes" "$dir/etcd-$etcd" "-s -w" go.etcd.io/etcd/server/v3
build "$here/keda" "$dir/keda-operator-$keda" \
	"-s -w -X github.com/kedacore/keda/v2/version.Version=$keda" \
	github.com/kedacore/keda/v2/cmd/operator
build "$here/kubernetes" "$dir/kube-controller-manager-$k8s" "$k8sflags" k8s.io/kubernetes/cmd/kube-controller-manager

crds="$dir/keda-crds-$keda"
if [ -d "$crds" ]; then
	echo "cached: $crds"
else
	src="$(cd "$here/keda" && go mod download -json github.com/kedacore/keda/v2 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
	rm -rf "$crds.tmp"
	mkdir -p "$crds.tmp"
	cp "$src"/config/crd/bases/*.yaml "$crds.tmp/"
	chmod 0644 "$crds.tmp"/*.yaml
	mv "$crds.tmp" "$crds"
	echo "copied KEDA's CRDs to $crds"
fi
