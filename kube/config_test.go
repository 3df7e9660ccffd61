package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:6443
users:
- name: ebb
  user:
    token: not-a-secret
contexts:
- name: test
  context: {cluster: test, user: ebb}
current-context: test
`

func TestConfig(t *testing.T) {
	t.Run("neither", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		if _, err := Config(""); !errors.Is(err, ErrNoCluster) {
			t.Fatalf("got %v, want ErrNoCluster", err)
		}
	})
	t.Run("kubeconfig", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1") // the file wins
		path := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Config(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != "https://127.0.0.1:6443" || cfg.BearerToken != "not-a-secret" || cfg.UserAgent != "ebb" {
			t.Fatalf("got host %q, token %q, user agent %q", cfg.Host, cfg.BearerToken, cfg.UserAgent)
		}
	})
	t.Run("missing kubeconfig", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope")
		_, err := Config(path)
		if err == nil || errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v, want an error naming %s", err, path)
		}
	})
	t.Run("in-cluster without a service account", func(t *testing.T) {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
			t.Skip("running in a pod with a service account token")
		}
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
		t.Setenv("KUBERNETES_SERVICE_PORT", "443")
		_, err := Config("")
		if err == nil || errors.Is(err, ErrNoCluster) || !strings.HasPrefix(err.Error(), "in-cluster config: ") {
			t.Fatalf("got %v, want an in-cluster config error", err)
		}
	})
}
