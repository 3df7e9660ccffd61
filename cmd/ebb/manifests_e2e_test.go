package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// manifest is one object of a file of deploy/ or of a README example.
type manifest struct {
	where string // file and document number
	obj   *unstructured.Unstructured
}

// deployPatch is not an object but a strategic-merge patch of the ebb
// Deployment; TestManifests applies it as one.
const deployPatch = "../../deploy/examples/tls/deployment-patch.yaml"

func readManifests(t *testing.T) []manifest {
	t.Helper()
	var files []string
	for _, glob := range []string{"../../deploy/*.yaml", "../../deploy/examples/*.yaml", "../../deploy/examples/tls/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m)
		files = append(files, m...)
	}
	var out []manifest
	for _, f := range files {
		if f == deployPatch {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeManifests(t, strings.TrimPrefix(f, "../../"), b)...)
	}
	if len(out) == 0 {
		t.Fatal("no manifests in deploy/")
	}
	for _, doc := range []string{"../../README.md", "../../deploy/README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, block := range yamlBlocks(string(b)) {
			ms := decodeManifests(t, fmt.Sprintf("%s yaml example %d", strings.TrimPrefix(doc, "../../"), i+1), []byte(block))
			for _, m := range ms {
				elidedSpec(m.obj, block)
			}
			out = append(out, ms...)
		}
	}
	return out
}

func decodeManifests(t *testing.T, where string, b []byte) []manifest {
	t.Helper()
	objs, err := controlplane.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	out := make([]manifest, len(objs))
	for i, o := range objs {
		out[i] = manifest{where: fmt.Sprintf("%s #%d (%s %s)", where, i+1, o.GetKind(), o.GetName()), obj: o}
	}
	return out
}

// yamlBlocks returns the ```yaml blocks of a Markdown text.
func yamlBlocks(md string) []string {
	var blocks []string
	var cur *strings.Builder
	for line := range strings.Lines(md) {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur = &strings.Builder{}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return blocks
}

// elidedSpec gives a README's Deployment whose spec is elided ("spec:" and
// then "# ...") the least spec an API server takes, so that what the
// example shows (its metadata and annotations) is what gets checked.
func elidedSpec(obj *unstructured.Unstructured, block string) {
	if obj.GetKind() != "Deployment" || obj.Object["spec"] != nil || !strings.Contains(block, "# ...") {
		return
	}
	labels := map[string]any{"app": obj.GetName()}
	obj.Object["spec"] = map[string]any{
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.invalid/app:1"}}},
		},
	}
}

func groupKind(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	if gvk.Group == "" {
		return gvk.Kind
	}
	return gvk.Group + "/" + gvk.Kind
}

// strictDryRun is a server-side dry run that rejects unknown and duplicate
// fields instead of dropping them.
var strictDryRun = metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}

// TestManifests creates every object of deploy/ and every YAML example of
// the READMEs on the API server (with the CRDs of KEDA, of the Prometheus
// Operator and of cert-manager) by a server-side dry run with strict field
// validation, and applies deploy/examples/tls's Deployment patch to the
// Deployment of deploy/ the same way.
func TestManifests(t *testing.T) {
	k := startKube(t, "default")
	controlPlane.WithCRDs(t, controlplane.Config{MonitoringCRDs: true, CertManagerCRDs: true})
	ctx := context.Background()
	ms := readManifests(t)

	// Namespaces first, while they may not exist; then every namespace the
	// objects are in, for real, so that their dry runs can pass admission.
	namespaces := map[string]bool{}
	for _, m := range ms {
		if m.obj.GetKind() == "Namespace" {
			namespaces[m.obj.GetName()] = true
			k.dryRunCreate(t, m)
		}
	}
	for _, m := range ms {
		if ns := m.obj.GetNamespace(); ns != "" && !namespaces[ns] {
			namespaces[ns] = true
		}
	}
	for ns := range namespaces {
		if err := k.cp.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}

	kinds := map[string]bool{}
	for _, m := range ms {
		kinds[groupKind(m.obj)] = true
		if m.obj.GetKind() != "Namespace" {
			k.dryRunCreate(t, m)
		}
	}
	// The kinds whose CRDs a plain cluster lacks are created too: the
	// examples hold each of them.
	for _, want := range []string{"cert-manager.io/Certificate", "cert-manager.io/ClusterIssuer", "monitoring.coreos.com/PrometheusRule", "monitoring.coreos.com/ServiceMonitor", "keda.sh/ScaledObject", "keda.sh/TriggerAuthentication"} {
		if !kinds[want] {
			t.Errorf("no %s among the manifests and examples", want)
		}
	}

	t.Run("strict validation rejects a misspelt field", func(t *testing.T) {
		so := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
			"metadata": map[string]any{"name": "typo", "namespace": "default"},
			"spec": map[string]any{"scaleTargetRef": map[string]any{"name": "typo"}, "pollingIntervall": int64(1),
				"triggers": []any{map[string]any{"type": "external", "metadata": map[string]any{"scalerAddress": "ebb:9090"}}}},
		}}
		ri, err := k.cp.Resource(so)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ri.Create(ctx, so, strictDryRun)
		want := `ScaledObject in version "v1alpha1" cannot be handled as a ScaledObject: strict decoding error: unknown field "spec.pollingIntervall"`
		if !apierrors.IsBadRequest(err) || err.Error() != want {
			t.Errorf("got %v, want BadRequest %q", err, want)
		}
	})

	t.Run("tls deployment patch", func(t *testing.T) {
		var base manifest
		for _, m := range ms {
			if m.where == "deploy/04-deployment.yaml #1 (Deployment ebb)" {
				base = m
			}
		}
		if base.obj == nil {
			t.Fatal("no Deployment ebb in deploy/04-deployment.yaml")
		}
		ri, err := k.cp.Resource(base.obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ri.Create(ctx, base.obj, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ri.Delete(context.Background(), "ebb", metav1.DeleteOptions{}) })
		y, err := os.ReadFile(deployPatch)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := controlplane.Decode(bytes.NewReader(y))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %d objects, %v; want one patch", deployPatch, len(objs), err)
		}
		patch, err := objs[0].MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ri.Patch(ctx, "ebb", types.StrategicMergePatchType, patch,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
		if err != nil {
			t.Fatalf("%s: %v", strings.TrimPrefix(deployPatch, "../../"), err)
		}
		args, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
		if !strings.Contains(fmt.Sprint(args), "--tls-cert") {
			t.Errorf("patched Deployment has no --tls-cert: %v", args)
		}
	})
}

// dryRunCreate creates m's object by a strict server-side dry run; an
// object that exists already (a namespace an earlier test made) is
// dry-run applied instead.
func (k *kubeEnv) dryRunCreate(t *testing.T, m manifest) {
	t.Helper()
	ri, err := k.cp.Resource(m.obj)
	if err != nil {
		t.Errorf("%s: %v", m.where, err)
		return
	}
	_, err = ri.Create(context.Background(), m.obj, strictDryRun)
	if apierrors.IsAlreadyExists(err) {
		body, jerr := m.obj.MarshalJSON()
		if jerr != nil {
			t.Fatal(jerr)
		}
		force := true
		_, err = ri.Patch(context.Background(), m.obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
			DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict, FieldManager: "ebb-test", Force: &force})
	}
	if err != nil {
		t.Errorf("%s: %v", m.where, err)
	}
}
