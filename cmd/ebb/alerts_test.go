package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ebbscale/ebb/queries/storetest"
)

const alertsFile = "../../deploy/examples/prometheusrule.yaml"

// TestAlertRules runs `promtool test rules` on the alerts of
// deploy/examples/prometheusrule.yaml, and checks that every ebb_ metric
// they read is one `ebb serve` exports.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath(storetest.PromtoolBinary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool: %v", err)
		}
		t.Skipf("SKIPPED: promtool is not installed (apt-get install prometheus): %v", err)
	}
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &rule); err != nil || rule.Kind != "PrometheusRule" {
		t.Fatalf("%s: kind %q, %v; want a PrometheusRule", alertsFile, rule.Kind, err)
	}
	rules, err := yaml.JSONToYAML(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests, err := os.ReadFile("testdata/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ebb.rules.yaml": rules, "alerts_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "ebb.rules.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	out, err = exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts_test.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Every metric the alerts read exists.
	e := startServe(t, "http://127.0.0.1:1", nil, "--interval=1m", "--max-staleness=1m")
	page := e.metrics(t)
	for _, name := range regexp.MustCompile(`\bebb_[a-z_]+`).FindAllString(string(rules), -1) {
		if !regexp.MustCompile(`(?m)^# TYPE `+name+` `).MatchString(page) && !slices.Contains(scrapedLater, name) {
			t.Errorf("the alerts read %s, which ebb serve does not export", name)
		}
	}
}

// scrapedLater are metrics with labels that appear only once something
// happened (a query, an RPC, a watched shape).
var scrapedLater = []string{"ebb_data_age_seconds", "ebb_grpc_requests_total", "ebb_query_errors_total", "ebb_queries_total"}
