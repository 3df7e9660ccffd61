package kube_test

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
)

func ExampleWatcher() {
	// In ebb serve the client comes from kube.Config; here it is a fake.
	client := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Namespace: "team-a", Name: "notebook",
		Annotations: map[string]string{
			"ebb.dev/idle-after": "30m",
			"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Europe/Berlin",
		},
	}})
	w, err := kube.NewWatcher(kube.WatcherConfig{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Synced():
	case err := <-done:
		fmt.Println(err)
		cancel()
		return
	}

	o, ok := w.Overrides(queries.WorkloadKey{Namespace: "team-a", Name: "notebook"})
	fmt.Println(ok, o.IdleAfter, o.KeepAwake[0])
	cancel()
	<-done
	// Output: true 30m0s 0 8 * * 1-5 for 12h in Europe/Berlin
}
