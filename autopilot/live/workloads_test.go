package live

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
)

func TestInventory(t *testing.T) {
	q := resource.MustParse
	gpu := corev1.Container{Name: "server", Resources: corev1.ResourceRequirements{
		// Limits only: the API server makes them the requests.
		Limits: corev1.ResourceList{corev1.ResourceCPU: q("4"), corev1.ResourceMemory: q("16Gi"), ResourceGPU: q("1")},
	}}
	sidecar := app("proxy", "100m", "128Mi")
	sidecar.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	llm := deployment("ml", "llm", 3, gpu)
	llm.Spec.Template.Spec.InitContainers = []corev1.Container{sidecar, app("migrate", "1", "1Gi")}
	llm.Annotations = map[string]string{"ebb.dev/idle-after": "30m", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
	unset := statefulSet("ml", "cache", 0, app("redis", "250m", "512Mi"))
	unset.Spec.Replicas = nil
	client := fake.NewClientset(namespace("ml"), llm, unset)

	inv := ReadInventory(context.Background(), client, []string{"ml"})
	want := []Workload{
		{Key: queries.WorkloadKey{Namespace: "ml", Name: "cache"}, Kind: KindStatefulSet, Replicas: 1, Containers: []Container{
			{Name: "redis", Resources: autopilot.Resources{CPURequest: 0.25, MemoryRequest: 512 * autopilot.MiB, MemoryLimit: 512 * autopilot.MiB}},
		}},
		{Key: queries.WorkloadKey{Namespace: "ml", Name: "llm"}, Kind: KindDeployment, Replicas: 3,
			Annotations: map[string]string{"ebb.dev/idle-after": "30m"},
			Containers: []Container{
				{Name: "proxy", Resources: autopilot.Resources{CPURequest: 0.1, MemoryRequest: 128 * autopilot.MiB, MemoryLimit: 128 * autopilot.MiB}},
				{Name: "server", Resources: autopilot.Resources{CPURequest: 4, CPULimit: 4, MemoryRequest: 16 * autopilot.GiB, MemoryLimit: 16 * autopilot.GiB, GPUs: 1}},
			}},
	}
	if got := inv.Workloads(); !reflect.DeepEqual(got, want) {
		t.Errorf("workloads\n got %+v\nwant %+v", got, want)
	}
	if !inv.Complete("ml") || inv.Complete("shop") {
		t.Errorf("complete: ml %v, shop %v", inv.Complete("ml"), inv.Complete("shop"))
	}

	// Into a history, over what kube-state-metrics said.
	h := history(t, autopilot.DefaultConfig(), t0, t0.Add(time.Hour), time.Minute)
	h.SetResources(autopilot.ContainerRef{Workload: queries.WorkloadKey{Namespace: "ml", Name: "llm"}, Pod: "llm-5f7b9c8d6d-abcde", Container: "server"},
		autopilot.Resources{CPURequest: 8})
	inv.Apply(h)
	rep := recommend(t, h)
	l := row(t, rep, "ml", "llm")
	if l.Replicas != 3 || len(l.Containers) != 2 || l.Containers[1].CPU.CurrentRequest != 4 || l.Containers[0].Memory.CurrentLimit != 128*autopilot.MiB {
		t.Errorf("llm %+v", l)
	}
}

func TestInventoryRefreshKeepsWhatItCannotReread(t *testing.T) {
	client := fake.NewClientset(shop()...)
	inv := ReadInventory(context.Background(), client, nil)
	if err := client.AppsV1().Deployments("shop").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	refuse(client, "list", "apps", "statefulsets")
	inv.Refresh(context.Background())
	var names []string
	for _, w := range inv.Workloads() {
		names = append(names, w.Key.Name)
	}
	// web is gone; db stays as first read.
	if !slices.Equal(names, []string{"db"}) || len(inv.Problems()) != 0 {
		t.Errorf("workloads %v, want [db]; problems %v", names, inv.Problems())
	}
}

// The API server is the source of truth for what exists: a workload only
// Prometheus knows is dropped where the inventory is complete, kept where
// it is not.
func TestExplainDropsWhatDoesNotExist(t *testing.T) {
	client := fake.NewClientset(append(shop(), namespace("ops"))...)
	refuse(client, "list", "apps", "deployments") // everywhere, but shop is listed before
	inv := ReadInventory(context.Background(), fake.NewClientset(shop()...), []string{"shop"})
	opsInv := ReadInventory(context.Background(), client, []string{"ops"})
	h := history(t, autopilot.DefaultConfig(), t0, t0.Add(time.Hour), time.Minute)
	for _, k := range []queries.WorkloadKey{{Namespace: "shop", Name: "old"}, {Namespace: "shop", Name: "web"}, {Namespace: "ops", Name: "cron"}} {
		h.CPU(autopilot.ContainerRef{Workload: k, Pod: k.Name + "-0", Container: "app"}, t0.Add(time.Minute), 0.1)
	}
	inv.Apply(h)
	rep := recommend(t, h)
	Explain(rep, inv, nil)
	var got []string
	for _, w := range rep.Workloads {
		got = append(got, w.Namespace+"/"+w.Name)
	}
	slices.Sort(got)
	if want := []string{"ops/cron", "shop/db", "shop/web"}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}

	// ops' deployments could not be listed: its Prometheus rows stay, and
	// no row of its own is added.
	rep = recommend(t, h)
	Explain(rep, opsInv, nil)
	if row(t, rep, "ops", "cron").Name != "cron" {
		t.Error("ops/cron dropped")
	}
	for _, w := range rep.Workloads {
		if w.Name == AllNamespaces {
			t.Errorf("row %s/%s: %+v", w.Namespace, w.Name, w.Containers)
		}
	}
	var denied *kube.AccessError
	if p := opsInv.Problems(); len(p) != 1 || !errors.As(p[0].Err, &denied) {
		t.Errorf("problems %v", p)
	}
}
