package chart_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// helmBinary returns the cached helm, or ends the test: it fails under
// CI=true and skips otherwise, saying how to build it.
func helmBinary(t *testing.T) string {
	t.Helper()
	p := controlplane.DefaultBinaries().Helm
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("no helm at %s: run `make test-deps` to build it (16 minutes cold here under load, nothing when cached)", p)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintf(os.Stderr, "\n*** chart: SKIPPING %s: %s\n*** under CI=true this test fails.\n\n", t.Name(), msg)
		t.Skip("SKIPPED: " + msg)
	}
	return p
}

// helm runs helm with args in this folder, with its own empty config,
// cache and data folders and no cluster, and returns its stdout, stderr
// and error.
func helm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// The values of the renders the tests check: the defaults, and every
// feature on (testdata/all-features.yaml), with the APIs of the optional
// objects' CRDs present.
var (
	defaultValues = []string{}
	allFeatures   = []string{"-f", "testdata/all-features.yaml",
		"--api-versions", "monitoring.coreos.com/v1", "--api-versions", "cert-manager.io/v1"}
)

// doc is one rendered object: the template it came from and its YAML.
type doc struct {
	source string // e.g. templates/rbac.yaml
	yaml   string
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: ebb/(\S+)\n`)

// render runs helm template for release ebb in namespace ebb-system with
// args and returns its documents in order.
func render(t *testing.T, args ...string) []doc {
	t.Helper()
	out, stderr, err := helm(t, append([]string{"template", "ebb", ".", "--namespace", "ebb-system"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return splitDocs(t, out)
}

func splitDocs(t *testing.T, out string) []doc {
	t.Helper()
	var docs []doc
	for _, part := range strings.Split(out, "\n---\n") {
		part = strings.TrimPrefix(part, "---\n")
		m := sourceLine.FindStringSubmatch(part)
		if m == nil {
			if strings.TrimSpace(part) != "" {
				t.Fatalf("a rendered document without a # Source line:\n%s", part)
			}
			continue
		}
		body := strings.Replace(part, m[0], "", 1)
		if strings.TrimSpace(stripComments(body)) == "" {
			continue // a template that rendered only comments
		}
		docs = append(docs, doc{source: m[1], yaml: strings.TrimRight(body, "\n") + "\n"})
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// typeMeta is what every object says of its type.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// builtIn reports whether the API server serves kind without a CRD, that
// is, whether client-go's scheme knows it.
func builtIn(y string) (bool, error) {
	var tm typeMeta
	if err := yaml.Unmarshal([]byte(y), &tm); err != nil {
		return false, err
	}
	gvk := schemaGVK(tm)
	return scheme.Scheme.Recognizes(gvk), nil
}

// decodeStrict decodes a built-in object into its k8s.io/api type, failing
// on any field the type does not have and on duplicate fields.
func decodeStrict(y string) (runtime.Object, error) {
	var tm typeMeta
	if err := yaml.Unmarshal([]byte(y), &tm); err != nil {
		return nil, err
	}
	obj, err := scheme.Scheme.New(schemaGVK(tm))
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict([]byte(y), obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

func schemaGVK(tm typeMeta) schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
}
