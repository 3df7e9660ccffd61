package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
)

// Resources as RBAC rules and API errors name them.
const (
	resourceServices       = "services"
	resourceEndpointSlices = "endpointslices.discovery.k8s.io"
)

// HoldSource tells a Switcher which workloads hold requests while idle.
// The Watcher is one.
type HoldSource interface {
	// OnHoldChange registers the function called on every change; before
	// the source runs.
	OnHoldChange(HoldChangeFunc) error
	// Synced is closed once the source has told of every workload.
	Synced() <-chan struct{}
}

// SwitcherConfig configures a Switcher.
type SwitcherConfig struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Workloads tells which workloads hold requests, usually the Watcher,
	// not yet running. Required.
	Workloads HoldSource
	// Namespaces limits the Services switched to these namespaces; empty
	// watches all. Use the Watcher's.
	Namespaces []string
	// ActivatorPort is the port the activator listens on. Required.
	ActivatorPort int32
	// ActivatorService is ebb's own Service, "namespace/name": its ready
	// endpoints are the activator's addresses. Exactly one of
	// ActivatorService and ActivatorIPs is set.
	ActivatorService string
	// ActivatorIPs are the activator's addresses, for ebb outside the
	// cluster.
	ActivatorIPs []string
	// QPS is the sustained rate of EndpointSlice writes; default 5.
	QPS float32
	// Burst is how many writes may go out at once; default 10.
	Burst int
	// SyncTimeout bounds how long Run waits for the first complete list of
	// Services and EndpointSlices; default 2m.
	SyncTimeout time.Duration
	// Clock paces writes; defaults to the real clock.
	Clock Clock
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Metrics, when set, receives the switches and slice writes.
	Metrics *SwitchMetrics
	// Switched, when set, is called after ebb's slice of a Service of
	// workload w is written: proxy mode is in place for that Service, and
	// IdleReady may have turned true. It must not block.
	Switched func(w queries.WorkloadKey)
}

// Switcher puts the activator in front of the Services of workloads that
// hold requests (ebb.dev/hold-requests: "true") while they are idle, and
// takes it out again once they serve. It adds an EndpointSlice managed by
// ebb.dev to each such Service, whose endpoints are the activator's
// addresses, from ebb's first idle decision for the workload (Publish)
// until the workload is active and the Service has a ready endpoint of its
// own; then it deletes the slice. It answers the activator's questions
// (Resolve, Ready) from the same informer caches.
type Switcher struct {
	cfg       SwitcherConfig
	activator types.NamespacedName // ebb's own Service, or empty
	static    []string             // the activator's IPs when static, normalised

	factories []informers.SharedInformerFactory
	stores    map[string]caches // by namespace; NamespaceAll alone when all
	synced    []cache.InformerSynced

	queue workqueue.TypedRateLimitingInterface[item]
	writePacer

	running atomic.Bool
	informerSync

	mu        sync.RWMutex
	holds     map[string]map[string]Hold                   // namespace -> workload name -> Hold
	decisions map[queries.WorkloadKey]bool                 // the last decision published: active
	held      map[types.NamespacedName]queries.WorkloadKey // Services in proxy mode, for their workload
	heldBy    map[queries.WorkloadKey]int                  // how many Services each workload holds
	warned    map[types.NamespacedName]string              // the verb and result last warned about; worker only
	lastAddrs [2][]string                                  // the activator's addresses last seen; worker only

	holdsGen atomic.Uint64 // counts the changes of holds
	resolved sync.Map      // types.NamespacedName -> resolved, Resolve's answers

	writtenMu sync.Mutex
	written   map[types.NamespacedName]writtenSlice // ebb's writes the cache does not show yet

	waitMu  sync.Mutex
	waiters map[types.NamespacedName]chan struct{}

	afterItem func(item) // a test's hook, called by the worker after each item
}

var _ scaler.StateSink = (*Switcher)(nil)

// item is a unit of the Switcher's work.
type item struct {
	kind itemKind
	ns   string
	name string
}

type itemKind uint8

const (
	itemService   itemKind = iota // sync one Service
	itemWorkload                  // sync the Services of one workload
	itemActivator                 // the activator's addresses may have changed
)

// NewSwitcher returns a Switcher and registers it with cfg.Workloads; call
// Run to start switching.
func NewSwitcher(cfg SwitcherConfig) (*Switcher, error) {
	s := &Switcher{
		informerSync: informerSync{ready: make(chan struct{})},
		stores:       make(map[string]caches),
		holds:        make(map[string]map[string]Hold),
		decisions:    make(map[queries.WorkloadKey]bool),
		held:         make(map[types.NamespacedName]queries.WorkloadKey),
		heldBy:       make(map[queries.WorkloadKey]int),
		warned:       make(map[types.NamespacedName]string),
		written:      make(map[types.NamespacedName]writtenSlice),
		waiters:      make(map[types.NamespacedName]chan struct{}),
	}
	switch {
	case cfg.Client == nil:
		return nil, errors.New("switcher: no client")
	case cfg.Workloads == nil:
		return nil, errors.New("switcher: no workloads")
	case cfg.ActivatorPort <= 0 || cfg.ActivatorPort > 65535:
		return nil, fmt.Errorf("switcher: activator port = %d, must be in [1, 65535]", cfg.ActivatorPort)
	case cfg.ActivatorService == "" && len(cfg.ActivatorIPs) == 0:
		return nil, errors.New("switcher: neither an activator service nor activator IPs")
	case cfg.ActivatorService != "" && len(cfg.ActivatorIPs) > 0:
		return nil, errors.New("switcher: both an activator service and activator IPs; set one")
	case cfg.QPS < 0:
		return nil, fmt.Errorf("switcher: qps = %g, must be positive", cfg.QPS)
	case cfg.Burst < 0:
		return nil, fmt.Errorf("switcher: burst = %d, must be positive", cfg.Burst)
	case cfg.SyncTimeout < 0:
		return nil, fmt.Errorf("switcher: sync timeout = %s, must be positive", cfg.SyncTimeout)
	}
	if cfg.ActivatorService != "" {
		ns, name, ok := strings.Cut(cfg.ActivatorService, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("switcher: activator service %q, want namespace/name", cfg.ActivatorService)
		}
		s.activator = types.NamespacedName{Namespace: ns, Name: name}
	}
	for _, raw := range cfg.ActivatorIPs {
		ip, err := netip.ParseAddr(strings.TrimSpace(raw))
		if err != nil || ip.Zone() != "" || ip.IsLoopback() || ip.IsUnspecified() {
			return nil, fmt.Errorf("switcher: activator IP %q: want a routable IPv4 or IPv6 address", raw)
		}
		s.static = append(s.static, ip.Unmap().String())
	}
	slices.Sort(s.static)
	s.static = slices.Compact(s.static)
	if cfg.QPS == 0 {
		cfg.QPS = 5
	}
	if cfg.Burst == 0 {
		cfg.Burst = 10
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 2 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s.cfg = cfg
	s.writePacer = newWritePacer(cfg.QPS, cfg.Burst, cfg.Clock)
	s.queue = workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[item](100*time.Millisecond, 2*time.Minute))

	namespaces := slices.DeleteFunc(slices.Clone(cfg.Namespaces), func(ns string) bool { return ns == "" })
	if len(namespaces) > 0 && s.activator.Namespace != "" {
		namespaces = append(namespaces, s.activator.Namespace)
	}
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		if err := s.addInformers(ns); err != nil {
			return nil, err
		}
	}
	if err := cfg.Workloads.OnHoldChange(s.setHold); err != nil {
		return nil, fmt.Errorf("switcher: %w", err)
	}
	return s, nil
}

// addInformers sets up the Service and EndpointSlice informers of ns.
func (s *Switcher) addInformers(ns string) error {
	svcF := informers.NewSharedInformerFactoryWithOptions(s.cfg.Client, 0,
		informers.WithNamespace(ns), informers.WithTransform(slimEndpoints))
	// Only slices that belong to a Service.
	sliceF := informers.NewSharedInformerFactoryWithOptions(s.cfg.Client, 0,
		informers.WithNamespace(ns), informers.WithTransform(slimEndpoints),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = labelServiceName }))
	svcInf := svcF.Core().V1().Services().Informer()
	sliceInf := sliceF.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInf.AddIndexers(cache.Indexers{serviceIndex: sliceServiceKey}); err != nil {
		return fmt.Errorf("switcher: slice index: %w", err)
	}
	for _, x := range []struct {
		inf      cache.SharedIndexInformer
		resource string
		key      func(any) (types.NamespacedName, bool)
	}{
		{svcInf, resourceServices, serviceKeyOf},
		{sliceInf, resourceEndpointSlices, sliceKeyOf},
	} {
		reg, err := x.inf.AddEventHandler(s.handler(x.key))
		if err != nil {
			return fmt.Errorf("switcher: %s handler: %w", x.resource, err)
		}
		if err := x.inf.SetWatchErrorHandlerWithContext(s.watchErrors(s.cfg.Logger, "Services or EndpointSlices may be stale", x.resource, ns, x.inf)); err != nil {
			return fmt.Errorf("switcher: %s error handler: %w", x.resource, err)
		}
		s.synced = append(s.synced, reg.HasSynced)
	}
	s.stores[ns] = caches{services: svcInf.GetIndexer(), slices: sliceInf.GetIndexer()}
	s.factories = append(s.factories, svcF, sliceF)
	return nil
}

// Run starts the informers, waits until they and the Workloads have
// listed everything, then switches Services until ctx is done. It fails
// when the first list does not complete: with an *AccessError when ebb may
// not list Services or EndpointSlices, after SwitcherConfig.SyncTimeout
// otherwise, and with ctx's error when ctx is done first. Run may be
// called once.
func (s *Switcher) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("switcher: already running")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		s.queue.ShutDown()
		for _, f := range s.factories {
			f.Shutdown()
		}
	}()
	syncCtx, stopSync := context.WithCancelCause(runCtx)
	defer stopSync(nil)
	s.stopSync = stopSync
	for _, f := range s.factories {
		f.Start(runCtx.Done())
	}
	errSyncTimeout := errors.New("sync timeout")
	timeoutCtx, cancel := context.WithTimeoutCause(syncCtx, s.cfg.SyncTimeout, errSyncTimeout)
	defer cancel()
	workloadsSynced := func() bool {
		select {
		case <-s.cfg.Workloads.Synced():
			return true
		default:
			return false
		}
	}
	if !cache.WaitForCacheSync(timeoutCtx.Done(), append(slices.Clone(s.synced), workloadsSynced)...) {
		err := context.Cause(timeoutCtx)
		if errors.Is(err, errSyncTimeout) {
			err = fmt.Errorf("list services and endpointslices.discovery.k8s.io: not done after %s", s.cfg.SyncTimeout)
			if last := s.lastErr.Load(); last != nil {
				err = fmt.Errorf("list services and endpointslices.discovery.k8s.io: not done after %s: %w", s.cfg.SyncTimeout, *last)
			}
		}
		return err
	}
	s.adoptLeftovers()
	close(s.ready)
	s.queue.Add(item{kind: itemActivator})
	s.cfg.Logger.Info("switching the Services of workloads that hold requests", "activator", s.activatorString())

	go func() {
		<-runCtx.Done()
		s.queue.ShutDown()
	}()
	for {
		it, shutdown := s.queue.Get()
		if shutdown {
			return nil
		}
		err := s.process(runCtx, it)
		switch {
		case err == nil:
			s.queue.Forget(it)
		case runCtx.Err() == nil:
			s.queue.AddRateLimited(it)
		}
		s.queue.Done(it)
		if s.afterItem != nil {
			s.afterItem(it)
		}
	}
}

// Synced is closed once Run has listed every Service and EndpointSlice.
func (s *Switcher) Synced() <-chan struct{} { return s.ready }

// Publish takes ebb's decision about a workload: idle puts its Services in
// proxy mode if it holds requests; active lets them go back to serve mode
// once they have ready endpoints of their own. It never blocks.
func (s *Switcher) Publish(st scaler.WorkloadState) {
	s.mu.Lock()
	old, known := s.decisions[st.Workload]
	s.decisions[st.Workload] = st.Decision.Active
	s.mu.Unlock()
	if !known || old != st.Decision.Active {
		s.queue.Add(item{kind: itemWorkload, ns: st.Workload.Namespace, name: st.Workload.Name})
	}
}

// setHold is the Workloads' HoldChangeFunc.
func (s *Switcher) setHold(key queries.WorkloadKey, h Hold, ok bool) {
	s.mu.Lock()
	byName := s.holds[key.Namespace]
	switch {
	case ok && byName == nil:
		byName = make(map[string]Hold)
		s.holds[key.Namespace] = byName
		fallthrough
	case ok:
		byName[key.Name] = h
	default:
		delete(byName, key.Name)
		if len(byName) == 0 {
			delete(s.holds, key.Namespace)
		}
	}
	s.holdsGen.Add(1)
	s.mu.Unlock()
	s.queue.Add(item{kind: itemWorkload, ns: key.Namespace, name: key.Name})
}

// adoptLeftovers marks the Services that have a slice of ebb's already
// (from an earlier run) as held for their workload, so that they stay in
// proxy mode until the workload serves.
func (s *Switcher) adoptLeftovers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.stores {
		for _, obj := range c.slices.List() {
			sl, ok := obj.(*discoveryv1.EndpointSlice)
			if !ok || !managedByEbb(sl) {
				continue
			}
			key := types.NamespacedName{Namespace: sl.Namespace, Name: sl.Labels[labelServiceName]}
			if _, ok := s.held[key]; ok {
				continue
			}
			if wl, ok := s.workloadOfLocked(s.service(key)); ok {
				s.held[key] = wl
				s.heldBy[wl]++
			}
		}
	}
}

func (s *Switcher) process(ctx context.Context, it item) error {
	switch it.kind {
	case itemWorkload:
		s.expand(queries.WorkloadKey{Namespace: it.ns, Name: it.name})
		return nil
	case itemActivator:
		s.activatorChanged()
		return nil
	}
	return s.sync(ctx, types.NamespacedName{Namespace: it.ns, Name: it.name})
}

// expand queues the Services of a workload: those that select it and those
// it holds.
func (s *Switcher) expand(wl queries.WorkloadKey) {
	s.mu.RLock()
	h, opted := s.holds[wl.Namespace][wl.Name]
	var keys []types.NamespacedName
	if s.heldBy[wl] > 0 {
		for svc, by := range s.held {
			if by == wl {
				keys = append(keys, svc)
			}
		}
	}
	s.mu.RUnlock()
	if opted {
		for _, svc := range s.servicesIn(wl.Namespace) {
			if len(svc.Spec.Selector) > 0 && selects(svc.Spec.Selector, h.Labels) {
				keys = append(keys, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
			}
		}
	}
	for _, k := range keys {
		s.queue.Add(item{kind: itemService, ns: k.Namespace, name: k.Name})
	}
}

// activatorChanged queues every held Service when the activator's
// addresses changed.
func (s *Switcher) activatorChanged() {
	v4, v6 := s.activatorAddrs()
	if slices.Equal(v4, s.lastAddrs[0]) && slices.Equal(v6, s.lastAddrs[1]) {
		return
	}
	s.lastAddrs = [2][]string{v4, v6}
	if len(v4) == 0 && len(v6) == 0 {
		s.cfg.Logger.Warn("the activator has no ready address; Services in proxy mode hold nothing until it has",
			"activator", s.activatorString())
	} else {
		s.cfg.Logger.Info("activator addresses", "ipv4", strings.Join(v4, ","), "ipv6", strings.Join(v6, ","))
	}
	s.mu.RLock()
	keys := make([]types.NamespacedName, 0, len(s.held))
	for k := range s.held {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	for _, k := range keys {
		s.queue.Add(item{kind: itemService, ns: k.Namespace, name: k.Name})
	}
}

// activatorAddrs returns the activator's addresses by family.
func (s *Switcher) activatorAddrs() (v4, v6 []string) {
	if s.activator.Name == "" {
		for _, a := range s.static {
			if strings.Contains(a, ":") {
				v6 = append(v6, a)
			} else {
				v4 = append(v4, a)
			}
		}
		return v4, v6
	}
	return readyAddrs(s.slicesOf(s.activator))
}

func (s *Switcher) activatorString() string {
	if s.activator.Name != "" {
		return "service " + s.activator.String()
	}
	return strings.Join(s.static, ",")
}

// handler queues the Service an object is about and wakes Ready's waiters.
func (s *Switcher) handler(keyOf func(any) (types.NamespacedName, bool)) cache.ResourceEventHandler {
	on := func(obj any, deleted bool) {
		key, ok := keyOf(obj)
		if !ok {
			return
		}
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if sl, ok := obj.(*discoveryv1.EndpointSlice); ok {
			s.seen(key, sl, deleted)
		}
		if key == s.activator {
			s.queue.Add(item{kind: itemActivator})
		}
		s.queue.Add(item{kind: itemService, ns: key.Namespace, name: key.Name})
		s.resolved.Delete(key) // frees the answer of a deleted Service
		s.changed(key)         // after the sync is queued: a test waits for both
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { on(obj, false) },
		UpdateFunc: func(_, obj any) { on(obj, false) },
		DeleteFunc: func(obj any) { on(obj, true) },
	}
}

func serviceKeyOf(obj any) (types.NamespacedName, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		ns, name, err := cache.SplitMetaNamespaceKey(tomb.Key)
		return types.NamespacedName{Namespace: ns, Name: name}, err == nil
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, true
}

func sliceKeyOf(obj any) (types.NamespacedName, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || sl.Labels[labelServiceName] == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: sl.Namespace, Name: sl.Labels[labelServiceName]}, true
}
