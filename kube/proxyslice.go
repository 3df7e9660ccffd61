package kube

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ebbscale/ebb/queries"
)

// sliceSuffix ends the name of ebb's slice of a Service. A Service's name
// has no dot, so no slice the EndpointSlice controller names after it
// (<service>-<random>) can take this name.
const sliceSuffix = ".ebb"

// SliceName is the name of the EndpointSlice that points Service service
// at the activator.
func SliceName(service string) string { return service + sliceSuffix }

// sync brings ebb's slice of one Service to what the Service's mode wants:
// present with the activator's addresses in proxy mode, absent in serve
// mode. It returns an error to be retried.
func (s *Switcher) sync(ctx context.Context, key types.NamespacedName) error {
	svc := s.service(key)
	all := s.slicesOf(key)
	name := SliceName(key.Name)
	var cached *discoveryv1.EndpointSlice
	for _, sl := range all {
		switch {
		case !managedByEbb(sl):
		case sl.Name == name:
			cached = sl
		default: // not a name ebb gives: not ebb's to keep
			if err := s.deleteSlice(ctx, key, sl.Name); err != nil {
				return err
			}
		}
	}
	var want *discoveryv1.EndpointSlice
	if s.decide(key, svc, hasReadyEndpoint(all)) {
		want = s.proxySlice(svc)
	}
	// Until the cache shows ebb's last write, that write is what is there.
	have := cached
	if w, ok := s.lastWrite(key); ok {
		have = w.slice
	}
	var (
		now *discoveryv1.EndpointSlice
		err error
	)
	switch {
	case want == nil && have == nil:
		return nil
	case want == nil:
		err = s.deleteSlice(ctx, key, name)
	case have != nil && sameSlice(have, want):
		return nil
	default:
		now, err = s.applySlice(ctx, key, have, want)
	}
	s.writtenMu.Lock()
	if err != nil {
		// A conflict among them: the cache is the truth again.
		delete(s.written, key)
		s.writtenMu.Unlock()
		return err
	}
	s.written[key] = writtenSlice{version: versionOf(now), slice: now}
	s.writtenMu.Unlock()
	if want != nil && s.cfg.Switched != nil {
		s.mu.RLock()
		wl, held := s.held[key]
		s.mu.RUnlock()
		if held {
			s.cfg.Switched(wl)
		}
	}
	return nil
}

// writtenSlice is ebb's last write of a Service's slice, kept until the
// cache shows it: until then the cache may hold an older version.
type writtenSlice struct {
	version string                     // versionOf the slice written
	slice   *discoveryv1.EndpointSlice // the API server's answer; nil after a delete
}

// lastWrite returns ebb's last write of Service key's slice while the cache
// has not shown it.
func (s *Switcher) lastWrite(key types.NamespacedName) (writtenSlice, bool) {
	s.writtenMu.Lock()
	defer s.writtenMu.Unlock()
	w, ok := s.written[key]
	return w, ok
}

// seen forgets ebb's last write of a slice once the cache has shown it, or
// a deletion of the slice that may be later than it: from then on the cache
// is the truth. The slice informer's handler calls it before the sync.
func (s *Switcher) seen(key types.NamespacedName, sl *discoveryv1.EndpointSlice, deleted bool) {
	if sl.Name != SliceName(key.Name) || !managedByEbb(sl) {
		return
	}
	s.writtenMu.Lock()
	defer s.writtenMu.Unlock()
	if w, ok := s.written[key]; ok && (deleted || w.version == sl.ResourceVersion) {
		delete(s.written, key)
	}
}

// versionOf is a slice's resourceVersion, "-" for none.
func versionOf(sl *discoveryv1.EndpointSlice) string {
	if sl == nil {
		return "-"
	}
	return sl.ResourceVersion
}

// decide returns whether Service key is in proxy mode and records it: from
// its workload's idle decision until the workload is not idle and the
// Service has a ready endpoint of its own. It logs and counts the workload's
// switches.
func (s *Switcher) decide(key types.NamespacedName, svc *corev1.Service, ownReady bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	wl, opted := s.workloadOfLocked(svc)
	prev, wasHeld := s.held[key]
	active, known := s.decisions[wl]
	var proxy bool
	switch {
	case !opted:
	case known && !active:
		proxy = true
	case wasHeld && prev == wl:
		proxy = !ownReady
	}
	if wasHeld && (!proxy || prev != wl) {
		delete(s.held, key)
		s.release(prev, key)
	}
	if proxy && (!wasHeld || prev != wl) {
		s.held[key] = wl
		s.heldBy[wl]++
		if s.heldBy[wl] == 1 {
			s.cfg.Metrics.switched(toProxy)
			s.cfg.Logger.Info("workload in proxy mode: the activator holds its requests", "workload", wl.String(), "service", key.String())
		}
	}
	return proxy
}

// release counts a Service of wl out of proxy mode; with s.mu held.
func (s *Switcher) release(wl queries.WorkloadKey, key types.NamespacedName) {
	s.heldBy[wl]--
	if s.heldBy[wl] > 0 {
		return
	}
	delete(s.heldBy, wl)
	s.cfg.Metrics.switched(toServe)
	s.cfg.Logger.Info("workload in serve mode: its Services reach its pods", "workload", wl.String(), "service", key.String())
}

// proxySlice is ebb's slice of svc in proxy mode.
func (s *Switcher) proxySlice(svc *corev1.Service) *discoveryv1.EndpointSlice {
	v4, v6 := s.activatorAddrs()
	family, addrs := discoveryv1.AddressTypeIPv4, v4
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		family, addrs = discoveryv1.AddressTypeIPv6, v6
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      SliceName(svc.Name),
			Namespace: svc.Namespace,
			Labels: map[string]string{
				labelServiceName: svc.Name,
				labelManagedBy:   ManagedBy,
			},
			// No blockOwnerDeletion: it would need update on
			// services/finalizers where OwnerReferencesPermissionEnforcement
			// is on (OpenShift).
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1",
				Kind:       "Service",
				Name:       svc.Name,
				UID:        svc.UID,
				Controller: new(true),
			}},
		},
		AddressType: family,
		Endpoints:   make([]discoveryv1.Endpoint, 0, len(addrs)),
		Ports:       make([]discoveryv1.EndpointPort, 0, len(svc.Spec.Ports)),
	}
	for _, a := range addrs {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
		})
	}
	for _, p := range svc.Spec.Ports {
		sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{
			Name:        new(p.Name),
			Protocol:    new(protocolOr(p.Protocol)),
			Port:        new(s.cfg.ActivatorPort),
			AppProtocol: p.AppProtocol,
		})
	}
	return sl
}

// sameSlice reports whether have already says what want says.
func sameSlice(have, want *discoveryv1.EndpointSlice) bool {
	h := slimSlice(have)
	return h.AddressType == want.AddressType &&
		maps.Equal(h.Labels, want.Labels) &&
		apiequality.Semantic.DeepEqual(h.OwnerReferences, want.OwnerReferences) &&
		apiequality.Semantic.DeepEqual(h.Endpoints, want.Endpoints) &&
		apiequality.Semantic.DeepEqual(h.Ports, want.Ports)
}

// applySlice creates want, or updates have (what the cache or ebb's last
// write holds, may be nil) to it, and returns the API server's answer.
func (s *Switcher) applySlice(ctx context.Context, key types.NamespacedName, have, want *discoveryv1.EndpointSlice) (*discoveryv1.EndpointSlice, error) {
	api := s.cfg.Client.DiscoveryV1().EndpointSlices(key.Namespace)
	if have != nil {
		return s.updateSlice(ctx, key, have.ResourceVersion, want)
	}
	if err := s.take(ctx); err != nil {
		return nil, err
	}
	now, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager})
	if !apierrors.IsAlreadyExists(err) {
		return now, s.wrote(key, "create", err)
	}
	// The cache is behind: compare with the API server's copy.
	live, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		return nil, s.wrote(key, "get", err)
	}
	if sameSlice(live, want) {
		return live, nil
	}
	return s.updateSlice(ctx, key, live.ResourceVersion, want)
}

func (s *Switcher) updateSlice(ctx context.Context, key types.NamespacedName, version string, want *discoveryv1.EndpointSlice) (*discoveryv1.EndpointSlice, error) {
	if err := s.take(ctx); err != nil {
		return nil, err
	}
	up := want.DeepCopy()
	up.ResourceVersion = version
	now, err := s.cfg.Client.DiscoveryV1().EndpointSlices(key.Namespace).Update(ctx, up, metav1.UpdateOptions{FieldManager: fieldManager})
	return now, s.wrote(key, "update", err)
}

func (s *Switcher) deleteSlice(ctx context.Context, key types.NamespacedName, name string) error {
	if err := s.take(ctx); err != nil {
		return err
	}
	err := s.cfg.Client.DiscoveryV1().EndpointSlices(key.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		s.cfg.Metrics.sliceWrite("delete", resultNotFound)
		return nil
	}
	return s.wrote(key, "delete", err)
}

// wrote counts a write of Service key's slice and turns its error into
// one that names what was refused; it logs a failure once per reason.
func (s *Switcher) wrote(key types.NamespacedName, verb string, err error) error {
	result := resultOK
	switch {
	case err == nil:
	case apierrors.IsConflict(err):
		result = resultConflict
		err = fmt.Errorf("%s %s %s: %w", verb, resourceEndpointSlices, SliceName(key.Name), err)
	case apierrors.IsNotFound(err):
		result = resultNotFound
		err = fmt.Errorf("%s %s %s: %w", verb, resourceEndpointSlices, SliceName(key.Name), err)
	case apierrors.IsForbidden(err):
		result = resultDenied
		err = &AccessError{Verb: verb, Resource: resourceEndpointSlices, Namespace: key.Namespace, Err: apiStatus(err)}
	default:
		result = resultError
		err = fmt.Errorf("%s %s %s: %w", verb, resourceEndpointSlices, SliceName(key.Name), err)
	}
	s.cfg.Metrics.sliceWrite(verb, result)
	if err == nil {
		if _, ok := s.warned[key]; ok {
			delete(s.warned, key)
			s.cfg.Logger.Info("Service switched again", "service", key.String())
		}
		return nil
	}
	// A refusal of another verb is news: without get, a create that
	// found the slice there fails on the get after failing on the create.
	if why := verb + " " + result; s.warned[key] == why {
		s.cfg.Logger.Debug("Service not switched; retrying", "service", key.String(), "err", err)
	} else {
		s.warned[key] = why
		s.cfg.Logger.Warn("Service not switched; retrying", "service", key.String(), "err", err)
	}
	return err
}
