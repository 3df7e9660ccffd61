package queries

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Catalog turns signal shapes into PromQL. Its label and metric names are
// configurable so that ebb fits stores whose relabelling differs from the
// defaults.
type Catalog struct {
	Requests     RequestsConfig
	GPU          GPUConfig
	ModelServers ModelServerConfig
}

// RequestsConfig names the Istio request counter and its labels.
//
// A workload's request rate is the rate its own proxies report
// (Reporter = DestinationReporter). While a workload has zero replicas it has
// no proxy, so the callers' proxies and the ingress gateway report
// (Reporter = SourceReporter) its requests with Workload = UnknownWorkload and
// the destination Service's namespace and name. ebb counts those requests for
// the workload whose name is the Service's name, in the Service's namespace:
// the convention that a workload's Service has the workload's name. They are
// counted only for workloads that have no destination-reported requests, so
// nothing is counted twice.
type RequestsConfig struct {
	// Metric is the request counter, "istio_requests_total".
	Metric string
	// NamespaceLabel and WorkloadLabel name the destination workload:
	// "destination_workload_namespace" and "destination_workload".
	NamespaceLabel string
	WorkloadLabel  string
	// ReporterLabel is "reporter"; DestinationReporter and SourceReporter are
	// its values for the server and the client side: "destination", "source".
	ReporterLabel       string
	DestinationReporter string
	SourceReporter      string
	// UnknownWorkload is the WorkloadLabel value a client reports when the
	// destination has no endpoints: "unknown".
	UnknownWorkload string
	// ServiceNamespaceLabel and ServiceNameLabel name the destination Service:
	// "destination_service_namespace" and "destination_service_name".
	ServiceNamespaceLabel string
	ServiceNameLabel      string
}

// GPUConfig names dcgm-exporter's utilization metrics and the labels that
// place a GPU in a pod.
type GPUConfig struct {
	// UtilMetric is the utilization in percent, "DCGM_FI_DEV_GPU_UTIL".
	UtilMetric string
	// ProfMetric is the graphics engine activity as a 0–1 ratio,
	// "DCGM_FI_PROF_GR_ENGINE_ACTIVE"; it is preferred on GPUs that have it.
	ProfMetric string
	// NamespaceLabel and PodLabel place the GPU: "namespace" and "pod".
	NamespaceLabel string
	PodLabel       string
	// ExportedNamespaceLabel and ExportedPodLabel are what Prometheus renames
	// them to when the exporter's target has its own namespace and pod labels:
	// "exported_namespace" and "exported_pod". When not empty they win.
	ExportedNamespaceLabel string
	ExportedPodLabel       string
}

// DefaultCatalog returns the catalog for Istio's and dcgm-exporter's metric
// and label names as kube-prometheus-stack scrapes them.
func DefaultCatalog() Catalog {
	return Catalog{
		Requests: RequestsConfig{
			Metric:                "istio_requests_total",
			NamespaceLabel:        "destination_workload_namespace",
			WorkloadLabel:         "destination_workload",
			ReporterLabel:         "reporter",
			DestinationReporter:   "destination",
			SourceReporter:        "source",
			UnknownWorkload:       "unknown",
			ServiceNamespaceLabel: "destination_service_namespace",
			ServiceNameLabel:      "destination_service_name",
		},
		GPU: GPUConfig{
			UtilMetric:             "DCGM_FI_DEV_GPU_UTIL",
			ProfMetric:             "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
			NamespaceLabel:         "namespace",
			PodLabel:               "pod",
			ExportedNamespaceLabel: "exported_namespace",
			ExportedPodLabel:       "exported_pod",
		},
		ModelServers: ModelServerConfig{
			NamespaceLabel: "namespace",
			PodLabel:       "pod",
		},
	}
}

// Validate reports every field that is empty, not a valid metric or label
// name, or clashes with another, one line per field.
func (c Catalog) Validate() error {
	var errs []error
	field := func(name, value string, check func(string) bool, what string) {
		switch {
		case value == "":
			errs = append(errs, fmt.Errorf("%s: empty", name))
		case check != nil && !check(value):
			errs = append(errs, fmt.Errorf("%s: %q is not a valid %s", name, value, what))
		}
	}
	distinct := func(fields ...[2]string) {
		seen := map[string]string{}
		for _, f := range fields {
			if prev, ok := seen[f[1]]; ok && f[1] != "" {
				errs = append(errs, fmt.Errorf("%s: %q is also %s", f[0], f[1], prev))
				continue
			}
			seen[f[1]] = f[0]
		}
	}

	r := c.Requests
	field("requests.metric", r.Metric, validMetricName, "metric name")
	field("requests.namespace_label", r.NamespaceLabel, validLabelName, "label name")
	field("requests.workload_label", r.WorkloadLabel, validLabelName, "label name")
	field("requests.reporter_label", r.ReporterLabel, validLabelName, "label name")
	field("requests.destination_reporter", r.DestinationReporter, nil, "")
	field("requests.source_reporter", r.SourceReporter, nil, "")
	field("requests.unknown_workload", r.UnknownWorkload, nil, "")
	field("requests.service_namespace_label", r.ServiceNamespaceLabel, validLabelName, "label name")
	field("requests.service_name_label", r.ServiceNameLabel, validLabelName, "label name")
	distinct(
		[2]string{"requests.namespace_label", r.NamespaceLabel},
		[2]string{"requests.workload_label", r.WorkloadLabel},
		[2]string{"requests.reporter_label", r.ReporterLabel},
		[2]string{"requests.service_namespace_label", r.ServiceNamespaceLabel},
		[2]string{"requests.service_name_label", r.ServiceNameLabel},
	)
	if r.DestinationReporter != "" && r.DestinationReporter == r.SourceReporter {
		errs = append(errs, fmt.Errorf("requests.source_reporter: %q is also requests.destination_reporter", r.SourceReporter))
	}

	g := c.GPU
	field("gpu.util_metric", g.UtilMetric, validMetricName, "metric name")
	field("gpu.prof_metric", g.ProfMetric, validMetricName, "metric name")
	field("gpu.namespace_label", g.NamespaceLabel, validLabelName, "label name")
	field("gpu.pod_label", g.PodLabel, validLabelName, "label name")
	field("gpu.exported_namespace_label", g.ExportedNamespaceLabel, validLabelName, "label name")
	field("gpu.exported_pod_label", g.ExportedPodLabel, validLabelName, "label name")
	distinct(
		[2]string{"gpu.namespace_label", g.NamespaceLabel},
		[2]string{"gpu.pod_label", g.PodLabel},
		[2]string{"gpu.exported_namespace_label", g.ExportedNamespaceLabel},
		[2]string{"gpu.exported_pod_label", g.ExportedPodLabel},
	)

	m := c.ModelServers
	field("model_servers.namespace_label", m.NamespaceLabel, validLabelName, "label name")
	field("model_servers.pod_label", m.PodLabel, validLabelName, "label name")
	distinct(
		[2]string{"model_servers.namespace_label", m.NamespaceLabel},
		[2]string{"model_servers.pod_label", m.PodLabel},
		[2]string{"the workload label of model-server queries", ModelServerWorkloadLabel},
	)
	return errors.Join(errs...)
}

// Expr returns the PromQL sent for shape: for requests, gpu and the
// model-server signals the catalog's query over shape.Window, for query
// shape.Expr unchanged.
//
// The requests query returns one series per workload, labelled with
// RequestsConfig.NamespaceLabel and WorkloadLabel; the gpu query returns one
// series per pod with its mean utilization across its GPUs, labelled with the
// four GPUConfig labels (pods are mapped to workloads by the caller, see
// WorkloadOfPod). The model-server queries return one series per workload,
// labelled with ModelServerLabels (pods are mapped to workloads in the
// query, as WorkloadOfPod maps them; see modelServerExpr).
func (c Catalog) Expr(shape Shape) (string, error) {
	switch {
	case shape.Signal == SignalQuery:
		if strings.TrimSpace(shape.Expr) == "" {
			return "", errors.New("query: empty expression")
		}
		return shape.Expr, nil
	case shape.Signal == SignalRequests, shape.Signal == SignalGPU:
	case shape.Signal.ModelServer():
		if _, err := ParseServer(string(shape.Server)); err != nil {
			return "", fmt.Errorf("%s: %w", shape.Signal, err)
		}
		if shape.Signal == SignalTTFT && !(shape.Quantile > 0 && shape.Quantile < 1) {
			return "", fmt.Errorf("ttft: quantile = %v, must be in (0, 1)", shape.Quantile)
		}
	default:
		return "", fmt.Errorf("unknown signal %q", shape.Signal)
	}
	if shape.Window <= 0 || shape.Window%time.Millisecond != 0 {
		return "", fmt.Errorf("%s: window = %v, must be a positive whole number of milliseconds", shape.Signal, shape.Window)
	}
	w := "[" + FormatWindow(shape.Window) + "]"
	switch {
	case shape.Signal == SignalGPU:
		return c.gpuExpr(w), nil
	case shape.Signal.ModelServer():
		e := c.modelServerExpr(shape, w)
		if e == "" {
			return "", fmt.Errorf("%s: server %s exposes no metric for it", shape.Signal, shape.Server)
		}
		return e, nil
	}
	return c.requestsExpr(w), nil
}

// requestsExpr is, with the default names and a 1m window:
//
//	sum by (destination_workload_namespace, destination_workload) (
//	  sum by (destination_workload_namespace, destination_workload) (
//	    rate(istio_requests_total{reporter="destination"}[1m]))
//	  or on (destination_workload_namespace, destination_workload)
//	  label_replace(label_replace(
//	    sum by (destination_service_namespace, destination_service_name) (
//	      rate(istio_requests_total{reporter="source",destination_workload="unknown"}[1m])),
//	    "destination_workload_namespace", "$1", "destination_service_namespace", "(.*)"),
//	    "destination_workload", "$1", "destination_service_name", "(.*)"))
//
// (on one line), or that with the activator's demand added (see
// activatorExpr). The source side is summed by Service before relabelling so
// that relabelled series can never collide.
func (c Catalog) requestsExpr(w string) string {
	r := c.Requests
	by := "(" + r.NamespaceLabel + ", " + r.WorkloadLabel + ")"
	dest := r.Metric + "{" + r.ReporterLabel + "=" + strconv.Quote(r.DestinationReporter) + "}"
	src := r.Metric + "{" + r.ReporterLabel + "=" + strconv.Quote(r.SourceReporter) + "," +
		r.WorkloadLabel + "=" + strconv.Quote(r.UnknownWorkload) + "}"
	srcBy := "(" + r.ServiceNamespaceLabel + ", " + r.ServiceNameLabel + ")"
	relabelled := "label_replace(label_replace(sum by " + srcBy + " (rate(" + src + w + ")), " +
		strconv.Quote(r.NamespaceLabel) + `, "$1", ` + strconv.Quote(r.ServiceNamespaceLabel) + `, "(.*)"), ` +
		strconv.Quote(r.WorkloadLabel) + `, "$1", ` + strconv.Quote(r.ServiceNameLabel) + `, "(.*)")`
	return "sum by " + by + " (sum by " + by + " (rate(" + dest + w + ")) or on " + by + " " + relabelled +
		" or " + c.activatorExpr(w) + ")"
}

// The activator's metrics, which the requests signal counts: requests that
// reached an ebb activator (held or forwarded) and requests held now, by
// the workload's namespace and name.
const (
	ActivatorRequestsMetric = "ebb_activator_requests_total"
	ActivatorPendingMetric  = "ebb_activator_pending"
	ActivatorNamespaceLabel = "namespace"
	ActivatorWorkloadLabel  = "workload"
)

// activatorExpr is the demand that every ebb replica's activator reports:
// the rate of requests that reached it plus the requests it holds now,
// summed over replicas, with the catalog's workload labels. A scrape through
// a ServiceMonitor renames the namespace label to exported_namespace, which
// wins when set. The ebb_source label keeps its rows apart from the mesh's
// rows in "or", so the outer sum adds the two. With the default names and a
// 1m window:
//
//	label_replace(label_replace(label_replace(label_replace(
//	  (sum by (namespace, exported_namespace, workload) (rate(ebb_activator_requests_total[1m]))
//	    + sum by (namespace, exported_namespace, workload) (ebb_activator_pending))
//	  or sum by (...) (rate(ebb_activator_requests_total[1m]))
//	  or sum by (...) (ebb_activator_pending),
//	  "namespace", "$1", "exported_namespace", "(.+)"),
//	  "destination_workload_namespace", "$1", "namespace", "(.*)"),
//	  "destination_workload", "$1", "workload", "(.*)"),
//	  "ebb_source", "activator", "", "")
func (c Catalog) activatorExpr(w string) string {
	r := c.Requests
	by := "(" + ActivatorNamespaceLabel + ", exported_" + ActivatorNamespaceLabel + ", " + ActivatorWorkloadLabel + ")"
	rate := "sum by " + by + " (rate(" + ActivatorRequestsMetric + w + "))"
	pending := "sum by " + by + " (" + ActivatorPendingMetric + ")"
	return `label_replace(label_replace(label_replace(label_replace(` +
		"(" + rate + " + " + pending + ") or " + rate + " or " + pending + ", " +
		strconv.Quote(ActivatorNamespaceLabel) + `, "$1", ` + strconv.Quote("exported_"+ActivatorNamespaceLabel) + `, "(.+)"), ` +
		strconv.Quote(r.NamespaceLabel) + `, "$1", ` + strconv.Quote(ActivatorNamespaceLabel) + `, "(.*)"), ` +
		strconv.Quote(r.WorkloadLabel) + `, "$1", ` + strconv.Quote(ActivatorWorkloadLabel) + `, "(.*)"), ` +
		`"ebb_source", "activator", "", "")`
}

// gpuExpr is, with the default names and a 1m window:
//
//	avg by (namespace, pod, exported_namespace, exported_pod) (
//	  (avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[1m]) * 100)
//	  or avg_over_time(DCGM_FI_DEV_GPU_UTIL[1m]))
//
// (on one line). "or" keeps a GPU's profiling series and adds its
// utilization series only when the GPU has no profiling series with the same
// labels, which dcgm-exporter gives every field of one GPU.
func (c Catalog) gpuExpr(w string) string {
	g := c.GPU
	by := "(" + g.NamespaceLabel + ", " + g.PodLabel + ", " + g.ExportedNamespaceLabel + ", " + g.ExportedPodLabel + ")"
	return "avg by " + by + " ((avg_over_time(" + g.ProfMetric + w + ") * 100) or avg_over_time(" + g.UtilMetric + w + "))"
}

// GPULabels returns the labels the gpu query groups by, in the order
// PodOf expects them.
func (c Catalog) GPULabels() []string {
	g := c.GPU
	return []string{g.NamespaceLabel, g.PodLabel, g.ExportedNamespaceLabel, g.ExportedPodLabel}
}

// PodOf returns the namespace and pod of a gpu row whose label values are
// vals (in GPULabels order): the exported labels win when not empty.
func PodOf(vals []string) (namespace, pod string) {
	namespace, pod = vals[0], vals[1]
	if vals[2] != "" {
		namespace = vals[2]
	}
	if vals[3] != "" {
		pod = vals[3]
	}
	return namespace, pod
}

// WorkloadOfPod returns the name of the Deployment or StatefulSet that owns
// a pod, from the pod's name alone:
//   - "<name>-<pod-template-hash>-<suffix>", a hash of 6 to 10 and a suffix of
//     5 characters from Kubernetes' safe alphabet (bcdfghjklmnpqrstvwxz2456789),
//     is a Deployment's pod: "<name>";
//   - "<name>-<ordinal>" is a StatefulSet's pod: "<name>";
//   - any other name is returned unchanged.
func WorkloadOfPod(pod string) string {
	i := strings.LastIndexByte(pod, '-')
	if i <= 0 {
		return pod
	}
	last := pod[i+1:]
	if j := strings.LastIndexByte(pod[:i], '-'); j > 0 && pod[j-1] != '-' {
		hash := pod[j+1 : i]
		if len(last) == 5 && safeEncoded(last) && len(hash) >= 6 && len(hash) <= 10 && safeEncoded(hash) {
			return pod[:j]
		}
	}
	if isOrdinal(last) && pod[i-1] != '-' {
		return pod[:i]
	}
	return pod
}

// safeEncoded reports whether s is made only of the characters Kubernetes
// uses for generated names and pod-template hashes.
func safeEncoded(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("bcdfghjklmnpqrstvwxz2456789", s[i]) < 0 {
			return false
		}
	}
	return s != ""
}

// isOrdinal reports whether s is a decimal StatefulSet ordinal: "0", "1", "12";
// not "", "01" or "-1".
func isOrdinal(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool { return model.LegacyValidation.IsValidLabelName(s) }

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool { return model.LegacyValidation.IsValidMetricName(s) }
