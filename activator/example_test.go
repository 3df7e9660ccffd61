package activator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/ebbscale/ebb/activator"
	"github.com/ebbscale/ebb/activator/activatortest"
	"github.com/ebbscale/ebb/queries"
)

// An activator in front of Service shop/web, whose one pod is ready.
func Example() {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the pod, via %s", r.Host)
	}))
	defer pod.Close()

	eps := activatortest.NewEndpoints()
	eps.AddService("shop", "web", queries.WorkloadKey{Namespace: "shop", Name: "web"})
	eps.SetReady("shop", "web", pod.Listener.Addr().String())

	act, err := activator.New(activator.Config{Endpoints: eps})
	if err != nil {
		panic(err)
	}
	front := httptest.NewServer(act)
	defer front.Close()

	for _, host := range []string{"web.shop.svc.cluster.local", "db.shop"} {
		req, _ := http.NewRequest("GET", front.URL, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, body)
	}
	// Output:
	// 200 hello from the pod, via web.shop.svc.cluster.local
	// 404 ebb activator: unknown host "db.shop": no Service shop/db held by ebb
}
