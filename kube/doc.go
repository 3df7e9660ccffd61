// Package kube connects ebb to the Kubernetes API: it reads workloads'
// autoshutdown annotations and writes their state back.
//
// A Watcher keeps informer caches of the Deployments and StatefulSets ebb
// may see and answers scaler.OverrideSource from memory; a StateWriter
// implements scaler.StateSink and patches ebb.dev/last-active and
// ebb.dev/state onto the workload when, and only when, they change. Config
// finds the cluster: in-cluster, a kubeconfig file, or ErrNoCluster, in
// which case ebb runs on trigger metadata alone.
//
// ebb needs get, list and watch on deployments and statefulsets in API group
// apps to read, and patch on them to write; deploy/02-rbac.yaml grants
// exactly that. Errors that come from missing permissions name the verb and
// the resource and point there.
package kube
