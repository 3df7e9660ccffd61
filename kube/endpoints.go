package kube

import (
	"net"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/ebbscale/ebb/queries"
)

// Labels of an EndpointSlice.
const (
	labelServiceName = discoveryv1.LabelServiceName // kubernetes.io/service-name
	labelManagedBy   = discoveryv1.LabelManagedBy   // endpointslice.kubernetes.io/managed-by
)

// ManagedBy is the endpointslice.kubernetes.io/managed-by label of the
// EndpointSlices that point a Service at the activator.
const ManagedBy = "ebb.dev"

// serviceIndex indexes EndpointSlices by the namespace/name of their
// Service.
const serviceIndex = "service"

// caches are the informer stores of one namespace, or of all.
type caches struct {
	services cache.Indexer
	slices   cache.Indexer
}

// cachesFor returns the stores that hold namespace ns.
func (s *Switcher) cachesFor(ns string) (caches, bool) {
	if c, ok := s.stores[metav1.NamespaceAll]; ok {
		return c, true
	}
	c, ok := s.stores[ns]
	return c, ok
}

// service returns the Service key names as the cache holds it, or nil.
func (s *Switcher) service(key types.NamespacedName) *corev1.Service {
	c, ok := s.cachesFor(key.Namespace)
	if !ok {
		return nil
	}
	obj, ok, err := c.services.GetByKey(key.String())
	if err != nil || !ok {
		return nil
	}
	svc, _ := obj.(*corev1.Service)
	return svc
}

// slicesOf returns the EndpointSlices of Service key in the cache.
func (s *Switcher) slicesOf(key types.NamespacedName) []*discoveryv1.EndpointSlice {
	c, ok := s.cachesFor(key.Namespace)
	if !ok {
		return nil
	}
	objs, err := c.slices.ByIndex(serviceIndex, key.String())
	if err != nil {
		return nil
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, sl)
		}
	}
	return out
}

// servicesIn returns the cached Services of namespace ns.
func (s *Switcher) servicesIn(ns string) []*corev1.Service {
	c, ok := s.cachesFor(ns)
	if !ok {
		return nil
	}
	objs, err := c.services.ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Service, 0, len(objs))
	for _, o := range objs {
		if svc, ok := o.(*corev1.Service); ok {
			out = append(out, svc)
		}
	}
	return out
}

// Resolve returns the workload behind Service namespace/name, and ok=false
// when ebb holds no such Service (not opted in, or unknown) or the Service
// has no port numbered port (0 matches any).
func (s *Switcher) Resolve(namespace, service string, port int32) (workload queries.WorkloadKey, ok bool) {
	key := types.NamespacedName{Namespace: namespace, Name: service}
	svc := s.service(key)
	if svc == nil {
		return queries.WorkloadKey{}, false
	}
	if _, ok := servicePort(svc, port); !ok {
		return queries.WorkloadKey{}, false
	}
	// Remembered for this Service object (the informer replaces it on every
	// change) and this generation of the holds.
	gen := s.holdsGen.Load()
	if v, ok := s.resolved.Load(key); ok {
		if r := v.(resolved); r.svc == svc && r.gen == gen {
			return r.workload, r.ok
		}
	}
	wl, ok := s.workloadOf(svc)
	s.resolved.Store(key, resolved{svc: svc, gen: gen, workload: wl, ok: ok})
	return wl, ok
}

// Namespace returns the namespace of the one Service called service that
// is in proxy mode now, for a Host that names no namespace ("Host: web",
// from a client in web's own namespace); ok is false when no Service of
// that name is held, or Services of that name are held in several
// namespaces. It fits activator.NamespaceFinder.
func (s *Switcher) Namespace(service string) (namespace string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for key := range s.held {
		if key.Name != service {
			continue
		}
		if ok {
			return "", false // held in two namespaces: ambiguous
		}
		namespace, ok = key.Namespace, true
	}
	return namespace, ok
}

// resolved is a remembered answer of Resolve.
type resolved struct {
	svc      *corev1.Service
	gen      uint64
	workload queries.WorkloadKey
	ok       bool
}

// Ready returns the ready addresses ("ip:port", the pod's target port) of
// the Service's own endpoints (slices not managed by ebb.dev) for the
// Service port the Host named (0: the Service's only port, or the port
// named "http", else its first port), and a channel closed when they may
// have changed.
func (s *Switcher) Ready(namespace, service string, port int32) (addrs []string, changed <-chan struct{}) {
	key := types.NamespacedName{Namespace: namespace, Name: service}
	// Take the channel before reading the cache: a change the read misses
	// is delivered to the handlers after it and closes this channel.
	changed = s.waiter(key)
	svc := s.service(key)
	if svc == nil {
		return nil, changed
	}
	sp, ok := servicePort(svc, port)
	if !ok {
		return nil, changed
	}
	for _, sl := range s.slicesOf(key) {
		if managedByEbb(sl) {
			continue
		}
		target, ok := slicePort(sl, sp)
		if !ok {
			continue
		}
		p := strconv.Itoa(int(target))
		for _, ep := range sl.Endpoints {
			if !endpointReady(ep) {
				continue
			}
			for _, a := range ep.Addresses {
				addrs = append(addrs, net.JoinHostPort(a, p))
			}
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), changed
}

// waiter returns the channel that the next change of Service key closes.
func (s *Switcher) waiter(key types.NamespacedName) <-chan struct{} {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	ch, ok := s.waiters[key]
	if !ok {
		ch = make(chan struct{})
		s.waiters[key] = ch
	}
	return ch
}

// changed wakes whoever waits on Service key's endpoints.
func (s *Switcher) changed(key types.NamespacedName) {
	s.waitMu.Lock()
	ch, ok := s.waiters[key]
	delete(s.waiters, key)
	s.waitMu.Unlock()
	if ok {
		close(ch)
	}
}

// workloadOf returns the workload that holds requests whose pod template
// labels svc selects; when several do, the first by name. A Service without
// a selector selects none.
func (s *Switcher) workloadOf(svc *corev1.Service) (queries.WorkloadKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.workloadOfLocked(svc)
}

// workloadOfLocked is workloadOf with s.mu held.
func (s *Switcher) workloadOfLocked(svc *corev1.Service) (queries.WorkloadKey, bool) {
	if svc == nil || len(svc.Spec.Selector) == 0 {
		return queries.WorkloadKey{}, false
	}
	var found string
	for name, h := range s.holds[svc.Namespace] {
		if selects(svc.Spec.Selector, h.Labels) && (found == "" || name < found) {
			found = name
		}
	}
	if found == "" {
		return queries.WorkloadKey{}, false
	}
	return queries.WorkloadKey{Namespace: svc.Namespace, Name: found}, true
}

// selects reports whether a Service selector matches labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// servicePort returns the Service's port numbered port; for 0, its only
// port, else the one named "http", else its first.
func servicePort(svc *corev1.Service, port int32) (corev1.ServicePort, bool) {
	ps := svc.Spec.Ports
	if port != 0 {
		for _, p := range ps {
			if p.Port == port {
				return p, true
			}
		}
		return corev1.ServicePort{}, false
	}
	if len(ps) == 0 {
		return corev1.ServicePort{}, false
	}
	for _, p := range ps {
		if p.Name == "http" {
			return p, true
		}
	}
	return ps[0], true
}

// slicePort returns the target port of the slice's port for Service port
// sp: the one with its name and protocol.
func slicePort(sl *discoveryv1.EndpointSlice, sp corev1.ServicePort) (int32, bool) {
	for _, p := range sl.Ports {
		if p.Port == nil || deref(p.Name) != sp.Name || protocolOf(p.Protocol) != protocolOr(sp.Protocol) {
			continue
		}
		return *p.Port, true
	}
	return 0, false
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func protocolOf(p *corev1.Protocol) corev1.Protocol { return protocolOr(deref(p)) }

// protocolOr returns p, or TCP, the API's default, when p is unset.
func protocolOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// endpointReady reports whether an endpoint takes requests: ready, and
// neither not serving nor terminating (unset conditions do not count
// against it). A Service with publishNotReadyAddresses marks every pod
// ready; serving still says whether the pod is.
func endpointReady(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	return (c.Ready == nil || *c.Ready) && (c.Serving == nil || *c.Serving) && (c.Terminating == nil || !*c.Terminating)
}

func managedByEbb(sl *discoveryv1.EndpointSlice) bool {
	return sl.Labels[labelManagedBy] == ManagedBy
}

// hasReadyEndpoint reports whether a Service has a ready endpoint of its
// own, in a slice ebb does not manage.
func hasReadyEndpoint(sls []*discoveryv1.EndpointSlice) bool {
	for _, sl := range sls {
		if managedByEbb(sl) {
			continue
		}
		if slices.ContainsFunc(sl.Endpoints, func(ep discoveryv1.Endpoint) bool {
			return endpointReady(ep) && len(ep.Addresses) > 0
		}) {
			return true
		}
	}
	return false
}

// readyAddrs returns the distinct ready addresses of slices, IPv4 and IPv6
// apart, each sorted.
func readyAddrs(sls []*discoveryv1.EndpointSlice) (v4, v6 []string) {
	for _, sl := range sls {
		if managedByEbb(sl) {
			continue
		}
		for _, ep := range sl.Endpoints {
			if !endpointReady(ep) {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				switch {
				case err != nil:
				case ip.Is4():
					v4 = append(v4, ip.String())
				default:
					v6 = append(v6, ip.String())
				}
			}
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	return slices.Compact(v4), slices.Compact(v6)
}

// sliceServiceKey is the cache's index function for serviceIndex.
func sliceServiceKey(obj any) ([]string, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name, ok := sl.Labels[labelServiceName]
	if !ok || name == "" {
		return nil, nil
	}
	return []string{sl.Namespace + "/" + name}, nil
}

// slimEndpoints is the Services' and EndpointSlices' informer transform:
// it keeps what switching and Ready read.
func slimEndpoints(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion},
			Spec: corev1.ServiceSpec{
				Selector:   o.Spec.Selector,
				Ports:      o.Spec.Ports,
				IPFamilies: o.Spec.IPFamilies,
			},
		}, nil
	case *discoveryv1.EndpointSlice:
		return slimSlice(o), nil
	}
	return obj, nil
}

// slimSlice keeps of a slice its name, version, the two labels switching
// reads, its owners when ebb manages it, and of its endpoints only the
// addresses and conditions.
func slimSlice(o *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
		},
		AddressType: o.AddressType,
		Ports:       o.Ports,
	}
	for _, k := range [...]string{labelServiceName, labelManagedBy} {
		if v, ok := o.Labels[k]; ok {
			if sl.Labels == nil {
				sl.Labels = make(map[string]string, 2)
			}
			sl.Labels[k] = v
		}
	}
	if managedByEbb(o) {
		sl.OwnerReferences = o.OwnerReferences
	}
	if len(o.Endpoints) > 0 {
		sl.Endpoints = make([]discoveryv1.Endpoint, len(o.Endpoints))
		for i, ep := range o.Endpoints {
			sl.Endpoints[i] = discoveryv1.Endpoint{
				Addresses:  ep.Addresses,
				Conditions: ep.Conditions,
			}
		}
	}
	return sl
}
