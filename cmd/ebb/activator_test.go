package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServeActivatorFlagErrors: every bad activator flag stops serve at
// start with a message that names the flag and what it wants.
func TestServeActivatorFlagErrors(t *testing.T) {
	url := "--prometheus-url=http://127.0.0.1:1"
	on := "--activator-addr=127.0.0.1:0"
	svc := "--activator-service=ebb-system/ebb"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{url, svc}, "--activator-service and --activator-ip need --activator-addr"},
		{[]string{url, "--activator-addr=8012", svc}, `--activator-addr "8012": address 8012: missing port in address`},
		{[]string{url, "--activator-addr=:http", svc}, `--activator-addr ":http": the port must be a number in [0, 65535]`},
		{[]string{url, on}, "--activator-addr needs --activator-service (ebb in the cluster) or --activator-ip (outside it)"},
		{[]string{url, on, svc, "--activator-ip=10.0.0.7"}, "--activator-service and --activator-ip exclude each other"},
		{[]string{url, on, "--activator-service=ebb"}, `--activator-service "ebb": want namespace/name, e.g. ebb-system/ebb`},
		{[]string{url, on, "--activator-service=Ebb/x"}, `--activator-service "Ebb/x": want namespace/name, e.g. ebb-system/ebb`},
		{[]string{url, on, "--activator-ip=10.0.0"}, `--activator-ip "10.0.0": not an IP address`},
		{[]string{url, on, "--activator-ip=127.0.0.1"}, "--activator-ip 127.0.0.1: the API server refuses loopback and unspecified addresses in EndpointSlices; give an address the cluster reaches"},
		{[]string{url, on, svc, "--hold-max-pending=0"}, "--hold-max-pending = 0, must be > 0"},
		{[]string{url, on, svc, "--hold-max-pending-total=10"}, "--hold-max-pending-total = 10, must be at least --hold-max-pending (1000)"},
		{[]string{url, on, svc, "--hold-timeout=0s"}, "--hold-timeout = 0s, must be > 0 and <= 1h0m0s"},
		{[]string{url, on, svc, "--hold-timeout=2h"}, "--hold-timeout = 2h0m0s, must be > 0 and <= 1h0m0s"},
		{[]string{url, on, svc, "--cluster-domain=cluster local"}, `--cluster-domain "cluster local": not a DNS name`},
		// Two problems at once are both named.
		{[]string{url, on, "--activator-ip=x", "--hold-max-pending=-1"}, "--activator-ip \"x\": not an IP address\n--hold-max-pending = -1, must be > 0"},
		// No cluster access (no kubeconfig, not in a cluster).
		{[]string{url, on, svc}, "--activator-addr needs cluster access (in-cluster config or --kubeconfig): Services are switched to the activator through EndpointSlices"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			var stderr bytes.Buffer
			err := runServe(context.Background(), tt.args, &stderr, serveDeps{getenv: func(string) string { return "" }})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v\nwant %q", err, tt.want)
			}
		})
	}
}
