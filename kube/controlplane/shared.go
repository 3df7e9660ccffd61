package controlplane

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Shared is one control plane for a whole test package, started on the
// first Get and stopped by Main after the package's tests:
//
//	var cluster = controlplane.Shared{Config: controlplane.Config{KEDA: true}}
//
//	func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
//
//	func TestX(t *testing.T) {
//		cp := cluster.Get(t)
//		...
//	}
//
// Tests that need the KEDA operator call KEDA instead of Get: the operator
// starts on the first such call, so a package whose other tests need only
// the API server does not wait for it.
type Shared struct {
	Config Config

	once sync.Once
	cp   *ControlPlane
	err  error

	mu        sync.Mutex
	kedaTried bool
	kedaErr   error
}

// Get returns the running control plane, starting it on the first call.
// When a binary is missing it skips the test with the command that builds
// it, or fails it under CI=true; any other start error fails it.
func (s *Shared) Get(tb testing.TB) *ControlPlane {
	tb.Helper()
	s.once.Do(func() {
		s.cp, s.err = Start(context.Background(), s.Config)
	})
	return require(tb, s.cp, s.err)
}

// KEDA returns the running control plane as Get does, with the KEDA
// operator started on the first call, and ends the test the same way when
// it cannot start.
func (s *Shared) KEDA(tb testing.TB) *ControlPlane {
	tb.Helper()
	cp := s.Get(tb)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kedaErr == nil && !s.kedaTried {
		s.kedaTried = true
		s.kedaErr = cp.StartKEDA(context.Background())
	}
	return require(tb, cp, s.kedaErr)
}

// WithCRDs returns the running control plane as Get does, with the
// optional CRD sets opts asks for (KEDACRDs, MonitoringCRDs,
// CertManagerCRDs) applied on the first call that asks for each, and ends
// the test as Get does when their folders are missing.
func (s *Shared) WithCRDs(tb testing.TB, opts Config) *ControlPlane {
	tb.Helper()
	cp := s.Get(tb)
	if cp == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return require(tb, cp, cp.ApplyCRDs(context.Background(), opts))
}

// require returns cp when err is nil and ends the test otherwise.
func require(tb testing.TB, cp *ControlPlane, err error) *ControlPlane {
	tb.Helper()
	if err == nil {
		return cp
	}
	if IsMissingBinary(err) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n*** controlplane: SKIPPING %s: %v\n*** under CI=true this test fails.\n\n", tb.Name(), err)
		tb.Skipf("SKIPPED, no control plane: %v", err)
		return nil
	}
	tb.Fatalf("controlplane: %v", err)
	return nil
}

// Main runs the package's tests and then stops the control plane if one
// was started. It returns m.Run's code, or 1 if the tests passed but the
// control plane did not stop cleanly.
func (s *Shared) Main(m *testing.M) int {
	code := m.Run()
	if s.cp != nil {
		if err := s.cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
