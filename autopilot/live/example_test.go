package live_test

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/autopilot/live"
)

// Read the workloads of a namespace, sample their usage, recommend, and
// let the report say why a workload has no recommendation: here a pod that
// metrics-server has not measured yet.
func Example() {
	ctx := context.Background()
	one, yes := int32(1), true
	app := corev1.Container{Name: "postgres", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
	}}
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &one, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0",
			OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db", Controller: &yes}}}},
	)
	inv := live.ReadInventory(ctx, client, []string{"shop"})
	for _, w := range inv.Workloads() {
		fmt.Println(w.Kind, w.Key, w.Replicas, "replica(s), requests", autopilot.FormatCPU(w.Containers[0].Resources.CPURequest), "CPU")
	}

	start := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	h, _ := autopilot.NewHistory(autopilot.DefaultConfig(), start, start.Add(15*time.Minute), 15*time.Second)
	s := &live.Sampler{Kube: client, Metrics: metricsfake.NewSimpleClientset(), Inventory: inv, Every: 15 * time.Second, Samples: 1}
	if err := s.Run(ctx, h); err != nil {
		fmt.Println(err)
		return
	}
	inv.Apply(h)
	rep, _ := autopilot.Recommend(h, autopilot.DefaultPrices(), "metrics-server")
	live.Explain(rep, inv, s)
	for _, w := range rep.Workloads {
		fmt.Printf("%s/%s: %s\n", w.Namespace, w.Name, w.Containers[0].CPU.NotEnoughData)
	}
	// Output:
	// StatefulSet shop/db 1 replica(s), requests 2 CPU
	// shop/db: 1 pod, none with metrics yet (metrics-server reports a pod about a minute after it starts)
}
