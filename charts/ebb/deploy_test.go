package chart_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// updateEnv set to 1 makes TestDeployIsRenderedFromTheChart write deploy/
// instead of comparing: `make manifests` does that.
const updateEnv = "EBB_UPDATE_MANIFESTS"

// deployFile is a file of deploy/ and the templates rendered into it.
type deployFile struct {
	path      string // under deploy/
	templates []string
	header    string
}

const rendered = "# Rendered from charts/ebb by `make manifests`: edit the chart, not this file.\n"

// deployFiles are the files of deploy/ that the chart renders, release ebb
// in namespace ebb-system with the default values (and the namespace).
// The file names carry a number because `kubectl apply -f deploy/` applies
// a folder's files in name order, and the namespace must come first.
var deployFiles = []deployFile{
	{"00-namespace.yaml", []string{"templates/namespace.yaml"}, ""},
	{"01-serviceaccount.yaml", []string{"templates/serviceaccount.yaml"}, ""},
	{"02-rbac.yaml", []string{"templates/rbac.yaml"}, ""},
	{"03-service.yaml", []string{"templates/service.yaml"}, ""},
	{"04-deployment.yaml", []string{"templates/deployment.yaml"}, ""},
	{"05-pdb.yaml", []string{"templates/pdb.yaml"}, ""},
}

// exampleFiles are the optional objects of deploy/examples/ that need CRDs a
// plain cluster lacks, rendered with their toggle on.
var exampleFiles = []deployFile{
	{"examples/servicemonitor.yaml", []string{"templates/servicemonitor.yaml"},
		"# Optional: scrape ebb's /metrics with the Prometheus Operator\n" +
			"# (kube-prometheus-stack). Needs the monitoring.coreos.com CRDs, which plain\n" +
			"# clusters lack, so it is not part of deploy/Kustomization. The chart's\n" +
			"# serviceMonitor.enabled renders the same.\n#\n" +
			"#   kubectl apply -f deploy/examples/servicemonitor.yaml\n"},
	{"examples/prometheusrule.yaml", []string{"templates/prometheusrule.yaml"},
		"# Optional: ebb's alerts for the Prometheus Operator (needs its CRD). The\n" +
			"# chart's prometheusRule.enabled renders the same; with a plain Prometheus\n" +
			"# use charts/ebb/files/alerts.yaml as a rule file.\n#\n" +
			"#   kubectl apply -f deploy/examples/prometheusrule.yaml\n"},
}

// autopilotFiles is the autopilot's RBAC, off by default, for `ebb
// recommend` run in the cluster from plain manifests.
var autopilotFiles = []deployFile{
	{"examples/autopilot-rbac.yaml", []string{"templates/rbac.yaml"},
		"# Optional: what `ebb recommend` reads when it runs in the cluster as ebb's\n" +
			"# ServiceAccount (--source metrics-server): PodMetrics, ReplicaSets, pods and\n" +
			"# namespaces. Off by default: the serving account does not need it. The\n" +
			"# chart's autopilot.enabled renders the same.\n#\n" +
			"#   kubectl apply -f deploy/examples/autopilot-rbac.yaml\n"},
}

// TestDeployIsRenderedFromTheChart checks that deploy/ is the chart
// rendered with its default values, so that the plain manifests and the
// chart cannot drift apart. With EBB_UPDATE_MANIFESTS=1 (`make manifests`)
// it writes them instead.
func TestDeployIsRenderedFromTheChart(t *testing.T) {
	want := map[string]string{}
	collect := func(files []deployFile, docs []doc) {
		for _, f := range files {
			var parts []string
			for _, d := range docs {
				for _, tpl := range f.templates {
					if d.source == tpl {
						parts = append(parts, d.yaml)
					}
				}
			}
			if len(parts) == 0 {
				t.Fatalf("deploy/%s: the chart renders nothing from %v", f.path, f.templates)
			}
			want[f.path] = rendered + f.header + strings.Join(parts, "---\n")
		}
	}
	collect(deployFiles, render(t, "--set", "namespace.create=true"))
	collect(autopilotFiles, render(t, "--set", "rbac.serving=false", "--set", "rbac.state=false", "--set", "activator.enabled=false",
		"--set", "autopilot.enabled=true", "--show-only", "templates/rbac.yaml"))
	collect(exampleFiles, render(t, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
		"--api-versions", "monitoring.coreos.com/v1", "--show-only", "templates/servicemonitor.yaml", "--show-only", "templates/prometheusrule.yaml"))

	update := os.Getenv(updateEnv) == "1"
	for path, content := range want {
		file := filepath.Join("..", "..", "deploy", path)
		if update {
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v: run `make manifests`", err)
			continue
		}
		if string(got) != content {
			t.Errorf("deploy/%s differs from the chart's render: run `make manifests` (and edit the chart, not deploy/)\n%s",
				path, firstDifference(string(got), content))
		}
	}
}

// firstDifference shows the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  deploy/: " + gl + "\n  chart:   " + wl
		}
	}
	return ""
}
