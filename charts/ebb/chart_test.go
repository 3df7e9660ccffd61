// Package chart_test checks the ebb Helm chart with the helm that `make
// test-deps` builds: lint, renders decoded strictly into their Kubernetes
// types, the values schema, deploy/ rendered from it, and (apiserver_test.go)
// the renders created on a real API server.
package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// TestLint runs helm lint --strict on the defaults and on every feature on
// but those that need a CRD's API (helm lint takes no --api-versions: the
// renders with them are checked by the tests below).
func TestLint(t *testing.T) {
	lintAll := []string{"-f", "testdata/all-features.yaml", "--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false",
		"--set", "tls.mode=secret", "--set", "tls.secretName=ebb-tls"}
	for name, args := range map[string][]string{"default": defaultValues, "all features": lintAll} {
		t.Run(name, func(t *testing.T) {
			out, stderr, err := helm(t, append([]string{"lint", "--strict", "."}, args...)...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint says:\n%s", out)
			}
		})
	}
}

// TestRenderDecodesStrictly renders the defaults and every feature on, and
// decodes every built-in object into its k8s.io/api type with unknown and
// duplicate fields refused. The objects of CRDs (KEDA's, the Prometheus
// Operator's, cert-manager's) are checked against the CRDs' own schemas on
// the API server instead (TestOnAPIServer), since ebb's module does not
// import those projects' Go types.
func TestRenderDecodesStrictly(t *testing.T) {
	for _, tt := range []struct {
		name      string
		args      []string
		wantKinds []string
	}{
		{"default", defaultValues, []string{
			"ClusterRole ebb", "ClusterRole ebb-activator", "ClusterRole ebb-state",
			"ClusterRoleBinding ebb", "ClusterRoleBinding ebb-activator", "ClusterRoleBinding ebb-state",
			"Deployment ebb", "PodDisruptionBudget ebb", "Service ebb", "ServiceAccount ebb"}},
		{"all features", allFeatures, []string{
			"Certificate ebb", "Certificate ebb-keda-client-tls",
			"ClusterRole ebb", "ClusterRole ebb-activator", "ClusterRole ebb-autopilot", "ClusterRole ebb-state",
			"ClusterRoleBinding ebb", "ClusterRoleBinding ebb-activator", "ClusterRoleBinding ebb-autopilot", "ClusterRoleBinding ebb-state",
			"Deployment ebb", "Namespace ebb-system", "NetworkPolicy ebb", "PodDisruptionBudget ebb",
			"PrometheusRule ebb", "Service ebb", "ServiceAccount ebb", "ServiceMonitor ebb"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var kinds []string
			for _, d := range render(t, tt.args...) {
				var tm struct {
					typeMeta
					Metadata struct{ Name string } `json:"metadata"`
				}
				if err := yaml.Unmarshal([]byte(d.yaml), &tm); err != nil {
					t.Fatalf("%s: %v", d.source, err)
				}
				kinds = append(kinds, tm.Kind+" "+tm.Metadata.Name)
				ok, err := builtIn(d.yaml)
				if err != nil {
					t.Fatalf("%s: %v", d.source, err)
				}
				if !ok {
					continue
				}
				if _, err := decodeStrict(d.yaml); err != nil {
					t.Errorf("%s: %v", d.source, err)
				}
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tt.wantKinds) {
				t.Errorf("rendered %q\nwant %q", kinds, tt.wantKinds)
			}
		})
	}

	t.Run("a misspelt field fails", func(t *testing.T) {
		_, err := decodeStrict("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ebb\nspec:\n  replica: 2\n")
		want := `apps/v1 Deployment: error unmarshaling JSON: while decoding JSON: json: unknown field "replica"`
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
}

// TestRBACByFeature checks that each toggle renders its own ClusterRole
// with its own rules, and nothing when off.
func TestRBACByFeature(t *testing.T) {
	type rule struct{ group, resource, verbs string }
	features := map[string][]rule{
		"ebb":           {{"apps", "deployments,statefulsets", "list,watch"}},
		"ebb-state":     {{"apps", "deployments,statefulsets", "patch"}},
		"ebb-activator": {{"", "services", "list,watch"}, {"discovery.k8s.io", "endpointslices", "get,list,watch,create,update,delete"}},
		"ebb-autopilot": {{"apps", "deployments,statefulsets", "list"}, {"metrics.k8s.io", "pods", "list"}, {"apps", "replicasets", "list"}, {"", "pods", "list"}, {"", "namespaces", "get"}},
	}
	for _, tt := range []struct {
		set  []string
		want []string
	}{
		{nil, []string{"ebb", "ebb-activator", "ebb-state"}},
		{[]string{"rbac.state=false"}, []string{"ebb", "ebb-activator"}},
		{[]string{"activator.enabled=false"}, []string{"ebb", "ebb-state"}},
		{[]string{"autopilot.enabled=true", "activator.enabled=false", "rbac.state=false"}, []string{"ebb", "ebb-autopilot"}},
		{[]string{"rbac.serving=false", "rbac.state=false", "activator.enabled=false", "autopilot.enabled=true"}, []string{"ebb-autopilot"}},
	} {
		t.Run(strings.Join(tt.set, ","), func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			var roles []string
			bound := map[string]bool{}
			for _, d := range render(t, args...) {
				obj, err := decodeStrict(d.yaml)
				if err != nil {
					t.Fatal(err)
				}
				switch o := obj.(type) {
				case *rbacv1.ClusterRole:
					roles = append(roles, o.Name)
					var got []rule
					for _, r := range o.Rules {
						got = append(got, rule{strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.Verbs, ",")})
					}
					if !slices.Equal(got, features[o.Name]) {
						t.Errorf("ClusterRole %s grants %v, want %v", o.Name, got, features[o.Name])
					}
				case *rbacv1.ClusterRoleBinding:
					if o.RoleRef.Name != o.Name || len(o.Subjects) != 1 || o.Subjects[0].Name != "ebb" || o.Subjects[0].Namespace != "ebb-system" {
						t.Errorf("ClusterRoleBinding %s binds %v to %v, want ClusterRole %s to ebb-system/ebb", o.Name, o.RoleRef, o.Subjects, o.Name)
					}
					bound[o.Name] = true
				case *appsv1.Deployment:
					// Without serving ebb has no cluster access at all.
					mounts := o.Spec.Template.Spec.AutomountServiceAccountToken
					if serving := !slices.Contains(tt.set, "rbac.serving=false"); serving != (mounts == nil) {
						t.Errorf("serving %v, automountServiceAccountToken %v", serving, mounts)
					}
				}
			}
			slices.Sort(roles)
			if !slices.Equal(roles, tt.want) {
				t.Errorf("ClusterRoles %v, want %v", roles, tt.want)
			}
			for _, r := range roles {
				if !bound[r] {
					t.Errorf("ClusterRole %s is not bound", r)
				}
			}
		})
	}
}

// TestValuesRejected checks that values.schema.json and the templates
// refuse wrong values with a message that names the value.
func TestValuesRejected(t *testing.T) {
	const schema = "Error: values don't meet the specifications of the schema(s) in the following chart(s):\nebb:\n"
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"negative replica count", []string{"--set", "replicaCount=-1"},
			schema + "- at '/replicaCount': minimum: got -1, want 1\n"},
		{"zero replicas", []string{"--set", "replicaCount=0"},
			schema + "- at '/replicaCount': minimum: got 0, want 1\n"},
		{"unknown TLS mode", []string{"--set", "tls.mode=mtls"},
			schema + "- at '/tls/mode': value must be one of 'none', 'secret', 'certManager'\n"},
		{"store URL without a scheme", []string{"--set", "store.url=prometheus.monitoring.svc:9090"},
			schema + "- at '/store/url': 'prometheus.monitoring.svc:9090' does not match pattern '^https?://[^/?#]+'\n"},
		{"bad duration", []string{"--set", "interval=5 seconds"},
			schema + "- at '/interval': '5 seconds' does not match pattern '^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'\n"},
		{"misspelt value", []string{"--set", "replicas=3"},
			schema + "- at '': additional properties 'replicas' not allowed\n"},
		{"port out of range", []string{"--set", "service.grpcPort=70000"},
			schema + "- at '/service/grpcPort': maximum: got 70,000, want 65,535\n"},
		{"serviceMonitor without its CRDs", []string{"--set", "serviceMonitor.enabled=true"},
			"Error: execution error at (ebb/templates/servicemonitor.yaml:2:4): serviceMonitor.enabled: the cluster does not serve monitoring.coreos.com/v1 (the CRDs of kube-prometheus-stack or the Prometheus Operator); install them, or turn serviceMonitor.enabled off (helm template: add --api-versions monitoring.coreos.com/v1)\n"},
		{"cert-manager without an issuer", []string{"--set", "tls.mode=certManager", "--api-versions", "cert-manager.io/v1"},
			"Error: execution error at (ebb/templates/certificate.yaml:4:4): tls.mode=certManager needs tls.certManager.issuerRef.name: the Issuer or ClusterIssuer that signs ebb's certificate\n"},
		{"TLS from a Secret without its name", []string{"--set", "tls.mode=secret"},
			"Error: execution error at (ebb/templates/deployment.yaml:8:4): tls.mode=secret needs tls.secretName: an existing Secret with tls.crt, tls.key and ca.crt\n"},
		{"state without serving", []string{"--set", "rbac.serving=false"},
			"Error: execution error at (ebb/templates/deployment.yaml:2:4): rbac.state needs rbac.serving: ebb writes the state of the workloads it reads\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := helm(t, append([]string{"template", "ebb", ".", "--namespace", "ebb-system"}, tt.args...)...)
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("helm template %v: %v, want it to fail", tt.args, err)
			}
			// helm ends a template's error with a hint to --debug.
			got := strings.TrimRight(stderr, "\n")
			got = strings.TrimRight(strings.TrimSuffix(got, "Use --debug flag to render out invalid YAML"), "\n")
			if want := strings.TrimRight(tt.want, "\n"); got != want {
				t.Errorf("helm template %v says\n%s\nwant\n%s", tt.args, got, want)
			}
		})
	}
}

// TestVersionsLineUp checks that the image tag is the chart's appVersion,
// that `make build` and `make docker` stamp that version, and that the
// flag they set is what `ebb version` prints.
func TestVersionsLineUp(t *testing.T) {
	b, err := os.ReadFile("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	for _, d := range render(t) {
		obj, err := decodeStrict(d.yaml)
		if err != nil {
			t.Fatal(err)
		}
		if dep, ok := obj.(*appsv1.Deployment); ok {
			if got, want := dep.Spec.Template.Spec.Containers[0].Image, "ebbscale/ebb:"+chart.AppVersion; got != want {
				t.Errorf("image %s, want %s", got, want)
			}
		}
	}
	// make build and make docker stamp the same version (make -n prints
	// what they would run).
	makeN := func(target string) string {
		out, err := exec.Command("make", "-n", "-C", "../..", target).CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	if cmd, want := makeN("build"), "-X main.version="+chart.AppVersion+"'"; !strings.Contains(cmd, want) {
		t.Errorf("make build runs %q, want it to set %s", cmd, want)
	}
	for _, want := range []string{"-t ebbscale/ebb:" + chart.AppVersion + " ", "--build-arg VERSION=" + chart.AppVersion + " "} {
		if cmd := makeN("docker"); !strings.Contains(cmd, want) {
			t.Errorf("make docker runs %q, want %q in it", cmd, want)
		}
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if want := `-X main.version=${VERSION}`; !strings.Contains(string(dockerfile), want) {
		t.Errorf("the Dockerfile's go build does not set %s", want)
	}
	// And that flag is what `ebb version` prints.
	bin := filepath.Join(t.TempDir(), "ebb")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+chart.AppVersion, "-o", bin, "../../cmd/ebb").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("ebb version: %v\n%s", err, out)
	}
	if got, want := string(out), "ebb "+chart.AppVersion+"\n"; got != want {
		t.Errorf("ebb version prints %q, want %q", got, want)
	}
}
