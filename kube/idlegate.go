package kube

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbscale/ebb/queries"
)

// IdleReady reports whether ebb may tell KEDA that workload w is idle: it
// does not hold requests (no ebb.dev/hold-requests, or no Service selects
// its pods), or every Service that selects them has ebb's EndpointSlice in
// place, in the cache or as ebb's last write. Until then an idle answer
// could let KEDA remove the last pod while the Service still points only at
// it, and a request in between would find no endpoint: the collector keeps
// answering active, and the Switcher's Switched callback tells it when the
// slices are written.
//
// Before the Switcher has read every Service and slice once, it cannot
// tell, and IdleReady is false.
func (s *Switcher) IdleReady(w queries.WorkloadKey) bool {
	select {
	case <-s.Synced():
	default:
		return false
	}
	s.mu.RLock()
	h, holds := s.holds[w.Namespace][w.Name]
	if !holds {
		s.mu.RUnlock()
		return true // the common case, one lookup: it holds no requests
	}
	// Every Service that selects its pods, even one that a tie gives to
	// another workload: waiting for that one's slice too is only safer.
	var keys []types.NamespacedName
	for _, svc := range s.servicesIn(w.Namespace) {
		if len(svc.Spec.Selector) > 0 && selects(svc.Spec.Selector, h.Labels) {
			keys = append(keys, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
		}
	}
	s.mu.RUnlock()
	for _, key := range keys {
		if !s.sliceInPlace(key) {
			return false
		}
	}
	return true
}

// sliceInPlace reports whether ebb's slice of Service key exists: as ebb's
// last write while the cache does not show it yet, else in the cache.
func (s *Switcher) sliceInPlace(key types.NamespacedName) bool {
	if w, ok := s.lastWrite(key); ok {
		return w.slice != nil
	}
	name := SliceName(key.Name)
	for _, sl := range s.slicesOf(key) {
		if sl.Name == name && managedByEbb(sl) {
			return true
		}
	}
	return false
}
