// Package live samples workloads and their live usage from the Kubernetes
// API and metrics.k8s.io into autopilot's histograms.
//
// An Inventory reads the Deployments and StatefulSets of some namespaces
// from the API server: their containers, requests and limits, replicas and
// ebb.dev/ annotations, which Apply writes into an autopilot.History where
// they take precedence over kube-state-metrics. A Sampler lists the pods'
// PodMetrics every so often, maps each pod to its workload through its
// owner references (Pod -> ReplicaSet -> Deployment, or Pod -> StatefulSet)
// and adds the usage to the same History, one point per container and step
// of the history. Explain then makes the report say why a row has no
// recommendation: metrics-server missing, a permission missing, a namespace
// that does not exist, pods without metrics yet, a workload at zero.
//
// Nothing here aborts a report: a problem is recorded against the
// namespace or the workload it concerns, and the rest goes on.
package live
