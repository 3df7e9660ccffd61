package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// Kind is the kind of object a workload is.
type Kind string

// The kinds of workload ebb reads and writes.
const (
	KindDeployment  Kind = "Deployment"
	KindStatefulSet Kind = "StatefulSet"
)

// resource is the kind's resource as RBAC rules and API errors name it.
func (k Kind) resource() string {
	switch k {
	case KindDeployment:
		return "deployments.apps"
	case KindStatefulSet:
		return "statefulsets.apps"
	}
	return string(k)
}

// annotationPrefix is what all of ebb's annotation keys start with; the
// informer caches keep no other annotation.
const annotationPrefix = "ebb.dev/"

// Target is the object a workload's state is written to, as the informer
// cache last saw it.
type Target struct {
	Kind Kind
	// Annotations holds the object's ebb.dev/ annotations and nothing else.
	// It is shared with the cache and must not be modified.
	Annotations map[string]string
	// ResourceVersion is the version of the object the cache holds.
	ResourceVersion string
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Namespaces limits the watch to these namespaces; empty watches all.
	Namespaces []string
	// SyncTimeout bounds how long Run waits for the first complete list of
	// workloads; default 2m.
	SyncTimeout time.Duration
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Metrics, when set, receives ebb_annotation_errors.
	Metrics *Metrics
}

// Watcher keeps the autoshutdown annotations of every Deployment and
// StatefulSet in its namespaces in memory, parsed once per change, and
// answers scaler.OverrideSource from there. A Deployment and a StatefulSet
// with the same name are one workload to ebb; the Deployment wins.
type Watcher struct {
	cfg       WatcherConfig
	factories []informers.SharedInformerFactory
	synced    []cache.InformerSynced

	// workloads maps a queries.WorkloadKey to its *workload. Loads take no
	// lock; stores happen under mu.
	workloads sync.Map
	mu        sync.Mutex // serialises the informers' handlers

	running atomic.Bool
	informerSync

	holdChanged HoldChangeFunc // set before Run, called under mu
}

var (
	_ scaler.OverrideSource = (*Watcher)(nil)
	_ Targets               = (*Watcher)(nil)
)

// object is what the Watcher keeps of one Deployment or StatefulSet. It is
// not modified once stored.
type object struct {
	annotations map[string]string // ebb.dev/ annotations only
	version     string
	overrides   shutdown.Overrides
	hold        *Hold // nil unless ebb.dev/hold-requests is "true"
}

// workload is what the Watcher knows under one name. It is not modified
// once stored; a change stores a copy.
type workload struct {
	deployment, statefulSet *object
	sharedNameLogged        bool
}

// current is the object the workload's overrides and state come from.
func (w *workload) current() (Kind, *object) {
	if w.deployment != nil {
		return KindDeployment, w.deployment
	}
	return KindStatefulSet, w.statefulSet
}

func (w *workload) get(k Kind) *object {
	if k == KindDeployment {
		return w.deployment
	}
	return w.statefulSet
}

// with returns a copy of w (which may be nil) with k's object set to o.
func (w *workload) with(k Kind, o *object) *workload {
	c := &workload{}
	if w != nil {
		*c = *w
	}
	if k == KindDeployment {
		c.deployment = o
	} else {
		c.statefulSet = o
	}
	return c
}

// NewWatcher returns a Watcher; call Run to fill and follow its caches.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("watcher: no client")
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 2 * time.Minute
	}
	if cfg.SyncTimeout < 0 {
		return nil, fmt.Errorf("watcher: sync timeout = %s, must be positive", cfg.SyncTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	namespaces := slices.DeleteFunc(slices.Clone(cfg.Namespaces), func(ns string) bool { return ns == "" })
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)
	cfg.Namespaces = namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}

	w := &Watcher{cfg: cfg, informerSync: informerSync{ready: make(chan struct{})}}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
			informers.WithNamespace(ns), informers.WithTransform(keepEbbMeta))
		for kind, inf := range map[Kind]cache.SharedIndexInformer{
			KindDeployment:  f.Apps().V1().Deployments().Informer(),
			KindStatefulSet: f.Apps().V1().StatefulSets().Informer(),
		} {
			reg, err := inf.AddEventHandler(w.handler(kind))
			if err != nil {
				return nil, fmt.Errorf("watcher: %s handler: %w", kind.resource(), err)
			}
			if err := inf.SetWatchErrorHandlerWithContext(w.watchErrors(w.cfg.Logger, "workload annotations may be stale", kind.resource(), ns, inf)); err != nil {
				return nil, fmt.Errorf("watcher: %s error handler: %w", kind.resource(), err)
			}
			// The registration is synced once this handler has seen the
			// initial list, not only the cache.
			w.synced = append(w.synced, reg.HasSynced)
		}
		w.factories = append(w.factories, f)
	}
	return w, nil
}

// Run starts the informers, waits until they have listed every workload,
// then follows changes until ctx is done. It fails when the first list does
// not complete: with an *AccessError when ebb may not list Deployments or
// StatefulSets, after WatcherConfig.SyncTimeout otherwise, and with ctx's
// error when ctx is done first. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("watcher: already running")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		for _, f := range w.factories {
			f.Shutdown() // waits for the informers' goroutines
		}
	}()
	syncCtx, stopSync := context.WithCancelCause(runCtx)
	defer stopSync(nil)
	w.stopSync = stopSync // set before the informers start, read by their error handlers
	for _, f := range w.factories {
		f.Start(runCtx.Done())
	}

	errSyncTimeout := errors.New("sync timeout")
	timeoutCtx, cancel := context.WithTimeoutCause(syncCtx, w.cfg.SyncTimeout, errSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(timeoutCtx.Done(), w.synced...) {
		err := context.Cause(timeoutCtx)
		if errors.Is(err, errSyncTimeout) {
			err = fmt.Errorf("list deployments.apps and statefulsets.apps: not done after %s", w.cfg.SyncTimeout)
			if last := w.lastErr.Load(); last != nil {
				err = fmt.Errorf("list deployments.apps and statefulsets.apps: not done after %s: %w", w.cfg.SyncTimeout, *last)
			}
		}
		return err
	}
	close(w.ready)
	n := 0
	w.workloads.Range(func(any, any) bool { n++; return true })
	w.cfg.Logger.Info("watching workloads' autoshutdown annotations", "workloads", n, "namespaces", w.namespaces())
	<-ctx.Done()
	return nil
}

// Synced is closed once Run has listed every workload; from then on
// Overrides answers for all of them.
func (w *Watcher) Synced() <-chan struct{} { return w.ready }

// Overrides returns the workload's parsed annotations; ok is false when no
// Deployment or StatefulSet has that name. When an annotation does not
// parse, o.Invalid holds the error and the policy never decides idle. It
// takes no lock.
func (w *Watcher) Overrides(key queries.WorkloadKey) (o shutdown.Overrides, ok bool) {
	wl := w.load(key)
	if wl == nil {
		return shutdown.Overrides{}, false
	}
	_, obj := wl.current()
	return obj.overrides, true
}

// Hold returns the workload's activator settings; ok is false when no
// Deployment or StatefulSet has that name or it does not hold requests
// (ebb.dev/hold-requests). It takes no lock.
func (w *Watcher) Hold(key queries.WorkloadKey) (h Hold, ok bool) {
	wl := w.load(key)
	if wl == nil {
		return Hold{}, false
	}
	if _, obj := wl.current(); obj.hold != nil {
		return *obj.hold, true
	}
	return Hold{}, false
}

// HoldTimeout returns the workload's ebb.dev/hold-timeout, or 0 when the
// workload does not hold requests or the annotation is unset or bad (the
// Watcher logs why): then the activator's default applies. It fits
// activator.Config.HoldTimeoutFor.
func (w *Watcher) HoldTimeout(key queries.WorkloadKey) time.Duration {
	h, _ := w.Hold(key)
	return h.Timeout
}

// OnHoldChange makes the Watcher call fn, from its informers' goroutines
// and in the order of their events, each time a workload's Hold may have
// changed. fn must not block. Call it before Run; there is one fn.
func (w *Watcher) OnHoldChange(fn HoldChangeFunc) error {
	if w.running.Load() {
		return errors.New("watcher: OnHoldChange after Run")
	}
	w.holdChanged = fn
	return nil
}

// Target returns the object to write a workload's state to, as the cache
// holds it; ok is false when no Deployment or StatefulSet has that name.
func (w *Watcher) Target(key queries.WorkloadKey) (t Target, ok bool) {
	wl := w.load(key)
	if wl == nil {
		return Target{}, false
	}
	kind, obj := wl.current()
	return Target{Kind: kind, Annotations: obj.annotations, ResourceVersion: obj.version}, true
}

func (w *Watcher) load(key queries.WorkloadKey) *workload {
	v, ok := w.workloads.Load(key)
	if !ok {
		return nil
	}
	return v.(*workload)
}

func (w *Watcher) namespaces() string {
	if len(w.cfg.Namespaces) == 0 {
		return "all"
	}
	return strings.Join(w.cfg.Namespaces, ",")
}

func (w *Watcher) handler(kind Kind) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.upsert(kind, obj) },
		UpdateFunc: func(_, obj any) { w.upsert(kind, obj) },
		DeleteFunc: func(obj any) { w.remove(kind, obj) },
	}
}

// upsert records an added or updated object, parsing its annotations only
// when ebb's inputs among them changed.
func (w *Watcher) upsert(kind Kind, obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	key := queries.WorkloadKey{Namespace: m.GetNamespace(), Name: m.GetName()}
	ann := m.GetAnnotations()

	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.load(key)
	var prev *object
	if old != nil {
		prev = old.get(kind)
	}
	if prev != nil && prev.version != "" && prev.version == m.GetResourceVersion() {
		return // a resync or a replayed event
	}
	o := &object{annotations: ann, version: m.GetResourceVersion()}
	if prev != nil && sameInputs(prev.annotations, ann) {
		o.overrides = prev.overrides
	} else {
		o.overrides, _ = shutdown.ParseAnnotations(ann)
		w.reportParse(kind, key, prev, o)
	}
	if holdsRequests(ann) {
		h := parseHold(ann, templateLabels(obj))
		o.hold = &h
		if h.Invalid != nil && (prev == nil || prev.annotations[AnnotationHoldTimeout] != ann[AnnotationHoldTimeout]) {
			w.cfg.Logger.Warn("bad hold timeout; the activator's default applies",
				"workload", key.String(), "kind", string(kind), "err", h.Invalid)
		}
	}
	wl := old.with(kind, o)
	if wl.deployment != nil && wl.statefulSet != nil && !wl.sharedNameLogged {
		wl.sharedNameLogged = true
		w.cfg.Logger.Warn("a Deployment and a StatefulSet share a name; ebb reads and writes the Deployment's annotations",
			"workload", key.String())
	}
	w.workloads.Store(key, wl)
	w.reportHold(key, old, wl)
}

// reportHold calls the OnHoldChange function when the workload's Hold
// changed from old's to wl's (either may be nil).
func (w *Watcher) reportHold(key queries.WorkloadKey, old, wl *workload) {
	if w.holdChanged == nil {
		return
	}
	before, after := old.holdOf(), wl.holdOf()
	switch {
	case before == nil && after == nil:
	case after == nil:
		w.holdChanged(key, Hold{}, false)
	case before == nil || !before.equal(*after):
		w.holdChanged(key, *after, true)
	}
}

// holdOf is the Hold of the workload's current object; w may be nil.
func (wl *workload) holdOf() *Hold {
	if wl == nil || (wl.deployment == nil && wl.statefulSet == nil) {
		return nil
	}
	_, obj := wl.current()
	return obj.hold
}

// reportParse logs and counts a change of o's annotations from prev's.
func (w *Watcher) reportParse(kind Kind, key queries.WorkloadKey, prev, o *object) {
	wasBad := prev != nil && prev.overrides.Invalid != nil
	switch bad := o.overrides.Invalid; {
	case bad != nil:
		w.cfg.Logger.Warn("bad autoshutdown annotations; the workload will not be shut down until they are fixed",
			"workload", key.String(), "kind", string(kind), "err", bad)
		if !wasBad {
			w.cfg.Metrics.addAnnotationErrors(1)
		}
	case wasBad:
		w.cfg.Logger.Info("autoshutdown annotations fixed", "workload", key.String(), "kind", string(kind))
		w.cfg.Metrics.addAnnotationErrors(-1)
	}
}

// remove forgets a deleted object.
func (w *Watcher) remove(kind Kind, obj any) {
	var key queries.WorkloadKey
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		ns, name, err := cache.SplitMetaNamespaceKey(tomb.Key)
		if err != nil {
			return
		}
		key = queries.WorkloadKey{Namespace: ns, Name: name}
	} else {
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		key = queries.WorkloadKey{Namespace: m.GetNamespace(), Name: m.GetName()}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.load(key)
	if old == nil || old.get(kind) == nil {
		return
	}
	if old.get(kind).overrides.Invalid != nil {
		w.cfg.Metrics.addAnnotationErrors(-1)
	}
	wl := old.with(kind, nil)
	if wl.deployment == nil && wl.statefulSet == nil {
		w.workloads.Delete(key)
	} else {
		w.workloads.Store(key, wl)
	}
	w.reportHold(key, old, wl)
}

// sameInputs reports whether a and b agree on the annotations ebb reads.
func sameInputs(a, b map[string]string) bool {
	for _, k := range [...]string{shutdown.AnnotationIdleAfter, shutdown.AnnotationAutoshutdown, shutdown.AnnotationKeepAwake} {
		va, oka := a[k]
		vb, okb := b[k]
		if oka != okb || va != vb {
			return false
		}
	}
	return true
}

// keepEbbMeta is the informers' transform: it keeps of a Deployment or
// StatefulSet only its name, version and ebb.dev/ annotations, and the pod
// template's labels when it holds requests (its Services select them), so
// that thousands of workloads (and their last-applied-configuration) cost
// little memory.
func keepEbbMeta(obj any) (any, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		d := &appsv1.Deployment{ObjectMeta: slimMeta(&o.ObjectMeta)}
		if holdsRequests(d.Annotations) {
			d.Spec.Template.Labels = o.Spec.Template.Labels
		}
		return d, nil
	case *appsv1.StatefulSet:
		s := &appsv1.StatefulSet{ObjectMeta: slimMeta(&o.ObjectMeta)}
		if holdsRequests(s.Annotations) {
			s.Spec.Template.Labels = o.Spec.Template.Labels
		}
		return s, nil
	}
	return obj, nil
}

// templateLabels returns the pod template labels of a Deployment or
// StatefulSet.
func templateLabels(obj any) map[string]string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Labels
	case *appsv1.StatefulSet:
		return o.Spec.Template.Labels
	}
	return nil
}

func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	var ann map[string]string
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			if ann == nil {
				ann = make(map[string]string, 5)
			}
			ann[k] = v
		}
	}
	return metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
		Annotations:     ann,
	}
}
