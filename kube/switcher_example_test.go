package kube_test

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

func ExampleSwitcher() {
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Namespace: "shop", Name: "web",
		Annotations: map[string]string{"ebb.dev/hold-requests": "true"},
	}}
	web.Spec.Template.Labels = map[string]string{"app": "web"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	client := fake.NewClientset(web, svc)

	// The Switcher registers with the Watcher before the Watcher runs.
	w, err := kube.NewWatcher(kube.WatcherConfig{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := kube.NewSwitcher(kube.SwitcherConfig{
		Client:        client,
		Workloads:     w,
		ActivatorPort: 8012,
		ActivatorIPs:  []string{"10.0.0.7"}, // or ActivatorService: "ebb-system/ebb"
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- w.Run(ctx) }()
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Synced():
	case err := <-done:
		fmt.Println(err)
		cancel()
		return
	}

	// The activator asks which workload a Host names.
	fmt.Println(s.Resolve("shop", "web", 80))
	// The collector's states go to the Switcher as to the StateWriter: an
	// idle decision puts the Service in proxy mode.
	var sink scaler.StateSink = s
	sink.Publish(scaler.WorkloadState{
		Workload: queries.WorkloadKey{Namespace: "shop", Name: "web"},
		Decision: shutdown.Decision{Active: false, Reason: shutdown.ReasonIdle},
	})
	cancel()
	for range 2 {
		<-done
	}
	// Output: shop/web true
}
