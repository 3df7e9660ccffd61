package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// keda plays KEDA's operator and the HPA against both replicas: IsActive
// every polling interval, GetMetrics every metrics interval while active,
// a StreamIsActive open for every external-push ScaledObject, each on its
// primary replica and on the other while the primary cannot be reached
// (a Service sends the new connection elsewhere). It checks every answer
// against the fleet's truth.
type keda struct {
	f        *fleet
	replicas [2]*replica
	down     [2]atomic.Bool // the harness killed it and it is not ready yet
	rec      *recorder
	watch    *storeWatch // when the store itself first had each wake

	streamGen atomic.Pointer[generation] // cancelled to cut every stream
}

// generation is the context streams open in until the next cut.
type generation struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// recorder collects what the checks find.
type recorder struct {
	mu sync.Mutex

	calls, ok        int
	falseIdle        []string // the first 10
	falseIdleCount   int
	pending          []answer // idle answers to check once blinds close
	pendingWakes     []answer
	pendingDropped   int
	rechecked        int
	unavailableStale int // Unavailable naming data older than --max-staleness
	unavailableNew   int // Unavailable "not collected yet" after a start
	unavailableDown  int // transport errors while a replica was down
	violations       []string
	violationCount   int
	failovers        int
	pushed           []answer // push waking workloads: each and its first true after demand
	wakeUnmeasured   int
	pairs, agreeNow  int
	agreeWithinTick  int
	disagree         []string
	pairSkipped      int
	lat              [2][]float64 // call latencies in the current bucket, seconds
	streamsOpen      atomic.Int64
	streamReopens    int
	metricsCalls     int
	lastStart        [2]time.Time // the replica's last (re)start
	storeRestartedAt time.Time
	blinds           []blind
	wakeLate         []string // wakes later than seenBy allows
}

func (r *recorder) violation(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violationCount++
	if len(r.violations) < 10 {
		r.violations = append(r.violations, time.Now().UTC().Format("15:04:05")+" "+fmt.Sprintf(format, args...))
	}
}

// ebb's words for data too old: IsActive's and GetMetrics'.
var (
	dataOld  = regexp.MustCompile(`\(data (\S+) old\)`)
	valueOld = regexp.MustCompile(`value is (\S+) old \(max staleness`)
)

// classify records a failed call's error: fine only if it is Unavailable
// and says why in ebb's words while that can be true.
func (k *keda) classify(rep int, w *workload, method string, err error, at time.Time) {
	st := status.Convert(err)
	msg := st.Message()
	r := k.rec
	switch {
	case st.Code() != codes.Unavailable:
		r.violation("%s %s/%s on replica %d: %s %q", method, w.namespace, w.name, rep, st.Code(), msg)
	case strings.Contains(msg, "activity unknown: not collected yet"):
		r.mu.Lock()
		recent := at.Sub(r.lastStart[rep]) < 20*time.Second || at.Sub(r.storeRestartedAt) < maxStaleness+20*time.Second
		r.unavailableNew++
		r.mu.Unlock()
		if !recent {
			r.violation("%s %s/%s on replica %d: %q long after its start", method, w.namespace, w.name, rep, msg)
		}
	case strings.Contains(msg, "activity unknown"), valueOld.MatchString(msg):
		m := dataOld.FindStringSubmatch(msg)
		if m == nil {
			m = valueOld.FindStringSubmatch(msg)
		}
		if m != nil {
			age, perr := time.ParseDuration(m[1])
			if perr != nil || age < maxStaleness-time.Second {
				r.violation("%s %s/%s on replica %d: Unavailable with data %s old, under --max-staleness: %q", method, w.namespace, w.name, rep, m[1], msg)
				return
			}
		}
		r.mu.Lock()
		r.unavailableStale++
		r.mu.Unlock()
	default: // transport: connection refused, reset, EOF
		if !k.down[rep].Load() && at.Sub(k.rec.lastStart[rep]) > 5*time.Second {
			r.violation("%s %s/%s on replica %d: transport error while it runs: %q", method, w.namespace, w.name, rep, msg)
			return
		}
		r.mu.Lock()
		r.unavailableDown++
		r.mu.Unlock()
	}
}

// blind is a span when the store did not answer (a fault, or Prometheus
// restarted empty until it has a rate again): demand that appears in it
// cannot be seen until it ends. An open one ends at an upper estimate until
// it is closed at its measured end.
type blind struct {
	from, to time.Time
	open     bool
}

func (r *recorder) addBlind(from, to time.Time) {
	r.mu.Lock()
	r.blinds = append(r.blinds, blind{from: from, to: to})
	r.mu.Unlock()
}

// openBlind starts a blind span whose end is not known yet; to is an upper
// estimate. It returns the span's index for closeBlind.
func (r *recorder) openBlind(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blinds = append(r.blinds, blind{from: from, to: to, open: true})
	return len(r.blinds) - 1
}

// closeBlind ends span i at its measured end.
func (r *recorder) closeBlind(i int, to time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blinds[i].to, r.blinds[i].open = to, false
}

// anyOpen says whether a blind span has no measured end yet: an answer it
// excuses is checked again once it has.
func (r *recorder) anyOpen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.blinds {
		if b.open {
			return true
		}
	}
	return false
}

// answer is an idle answer, or a wake, held for checking once every blind
// span has its measured end.
type answer struct {
	w      *workload
	t0, t1 time.Time
	via    string
}

// seenBy is when ebb can have seen demand that appeared at s: one tick and
// one scrape later, or that long after the store answers again.
func (k *keda) seenBy(s time.Time) time.Time { return k.seenWithin(s, wakeBound) }

// seenWithin is seenBy with bound in place of wakeBound.
func (k *keda) seenWithin(s time.Time, bound time.Duration) time.Time {
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	d := s.Add(bound)
	for _, b := range k.rec.blinds {
		if !b.from.After(d) && b.to.After(s) {
			d = maxTime(d, b.to.Add(bound))
		}
	}
	return d
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkAnswer checks an idle answer, given over [t0, t1], against the
// truth: it is false if the workload had demand within idleAfter before
// t1 that ebb could have seen by t0. One that only a blind span without a
// measured end excuses is checked again at the end (recheck).
func (k *keda) checkAnswer(w *workload, active bool, t0, t1 time.Time, via string) {
	if active {
		return
	}
	if k.falseIdle(w, t0, t1, via) {
		return
	}
	if k.rec.anyOpen() {
		k.rec.mu.Lock()
		if len(k.rec.pending) < maxPending {
			k.rec.pending = append(k.rec.pending, answer{w, t0, t1, via})
		} else {
			k.rec.pendingDropped++
		}
		k.rec.mu.Unlock()
	}
}

// maxPending bounds the idle answers held for recheck: a Prometheus restart
// holds about 30 s of them.
const maxPending = 2_000_000

// falseIdle records and reports an idle answer given over [t0, t1] that
// the truth says is false.
func (k *keda) falseIdle(w *workload, t0, t1 time.Time, via string) bool {
	x := t0.Add(-seeBound)
	for range 4 { // step back over blind spans
		if ld := k.f.lastDemand(w, x); ld.IsZero() || !k.seenWithin(ld, seeBound).After(t0) {
			break
		}
		k.rec.mu.Lock()
		for _, b := range k.rec.blinds {
			if !b.from.After(x.Add(seeBound)) && b.to.After(x) {
				x = b.from.Add(-seeBound)
			}
		}
		k.rec.mu.Unlock()
	}
	ld := k.f.lastDemand(w, x)
	if ld.IsZero() || !ld.After(t1.Add(-idleAfter)) || k.seenWithin(ld, seeBound).After(t0) {
		return false
	}
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	k.rec.falseIdleCount++
	if len(k.rec.falseIdle) < 10 {
		k.rec.falseIdle = append(k.rec.falseIdle, fmt.Sprintf("%s %s/%s (%s) idle via %s, last demand %s before", t1.UTC().Format("15:04:05.000"), w.namespace, w.name, w.kind, via, t1.Sub(ld).Round(time.Millisecond)))
	}
	return true
}

// recheck checks the answers held while a blind span had no measured end,
// now that every one has.
func (k *keda) recheck() {
	k.rec.mu.Lock()
	pending, wakes := k.rec.pending, k.rec.pendingWakes
	k.rec.pending, k.rec.pendingWakes = nil, nil
	k.rec.mu.Unlock()
	for _, a := range pending {
		k.falseIdle(a.w, a.t0, a.t1, a.via)
	}
	k.rec.mu.Lock()
	k.rec.rechecked += len(pending) + len(wakes)
	k.rec.mu.Unlock()
	for _, a := range wakes {
		k.checkWake(a.w, a.t1)
	}
}

// checkWake records a push stream's first true for a waking workload at
// now, late if after one tick and one scrape from when ebb could see the
// demand. One that a blind span without a measured end bounds is checked
// again at the end (recheck).
func (k *keda) checkWake(w *workload, now time.Time) {
	if k.rec.anyOpen() {
		k.rec.mu.Lock()
		k.rec.pendingWakes = append(k.rec.pendingWakes, answer{w: w, t1: now})
		k.rec.mu.Unlock()
		return
	}
	bound := k.seenBy(w.wakeAt)
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	if now.After(bound) {
		k.rec.wakeLate = append(k.rec.wakeLate, fmt.Sprintf("%s %s/%s woke at %s, pushed true %s later, %s after it could be seen", now.UTC().Format("15:04:05.000"), w.namespace, w.name, w.wakeAt.UTC().Format("15:04:05.000"), now.Sub(w.wakeAt).Round(time.Millisecond), now.Sub(bound).Round(time.Millisecond)))
	}
}

// call runs one unary call on w's primary, or on the other replica while
// the primary is down.
func (k *keda) target(w *workload) int {
	if k.down[w.primary].Load() {
		k.rec.mu.Lock()
		k.rec.failovers++
		k.rec.mu.Unlock()
		return 1 - w.primary
	}
	return w.primary
}

func (k *keda) ref(w *workload) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: w.name, Namespace: w.namespace, ScalerMetadata: w.metadata()}
}

func (k *keda) isActive(ctx context.Context, rep int, w *workload) (bool, error, time.Time, time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t0 := time.Now()
	resp, err := k.replicas[rep].client.IsActive(ctx, k.ref(w))
	t1 := time.Now()
	k.rec.mu.Lock()
	k.rec.calls++
	k.rec.lat[rep] = append(k.rec.lat[rep], t1.Sub(t0).Seconds())
	if err == nil {
		k.rec.ok++
	}
	k.rec.mu.Unlock()
	if err != nil {
		return false, err, t0, t1
	}
	return resp.Result, nil, t0, t1
}

// register is KEDA creating the HPA: GetMetricSpec for every ScaledObject
// on both replicas.
func (k *keda) register(ctx context.Context, rep int) error {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for _, w := range k.f.wl {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := k.replicas[rep].client.GetMetricSpec(cctx, k.ref(w)); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("GetMetricSpec on replica %d: %w", rep, err)
	}
	return nil
}

// poll is KEDA's polling loop: every workload's IsActive once per
// pollingInterval, spread evenly, and GetMetrics every metricsInterval for
// those last answered active.
func (k *keda) poll(ctx context.Context) {
	n := len(k.f.wl)
	active := make([]atomic.Bool, n)
	jobs := make(chan func(), 1024)
	for range 48 {
		go func() {
			for j := range jobs {
				j()
			}
		}()
	}
	const step = 100 * time.Millisecond
	perStep := float64(n) * float64(step) / float64(pollingInterval)
	metricsEvery := int(metricsInterval / step)
	t := time.NewTicker(step)
	defer t.Stop()
	next, acc, steps := 0, 0.0, 0
	for {
		select {
		case <-ctx.Done():
			close(jobs)
			return
		case <-t.C:
		}
		steps++
		acc += perStep
		for ; acc >= 1; acc-- {
			w := k.f.wl[next%n]
			next++
			jobs <- func() {
				rep := k.target(w)
				a, err, t0, t1 := k.isActive(ctx, rep, w)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					k.classify(rep, w, "IsActive", err, t1)
					return
				}
				active[w.i].Store(a)
				k.checkAnswer(w, a, t0, t1, fmt.Sprintf("IsActive on replica %d", rep))
			}
		}
		// GetMetrics for a slice of the active ones each step, so that each
		// is asked every metricsInterval.
		lo, hi := (steps%metricsEvery)*n/metricsEvery, (steps%metricsEvery+1)*n/metricsEvery
		for i := lo; i < hi; i++ {
			if !active[i].Load() {
				continue
			}
			w := k.f.wl[i]
			jobs <- func() {
				rep := k.target(w)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				t0 := time.Now()
				_, err := k.replicas[rep].client.GetMetrics(cctx, &pb.GetMetricsRequest{ScaledObjectRef: k.ref(w), MetricName: "s0-ebb-" + w.metadata()["signal"] + "-" + w.name})
				t1 := time.Now()
				if ctx.Err() != nil {
					return
				}
				k.rec.mu.Lock()
				k.rec.metricsCalls++
				k.rec.calls++
				k.rec.lat[rep] = append(k.rec.lat[rep], t1.Sub(t0).Seconds())
				if err == nil {
					k.rec.ok++
				}
				k.rec.mu.Unlock()
				if err != nil {
					k.classify(rep, w, "GetMetrics", err, t1)
				}
			}
		}
	}
}

// stream holds w's StreamIsActive open, reopening it when it ends, and
// records when a waking workload is first pushed true.
func (k *keda) stream(ctx context.Context, w *workload) {
	woke := false
	measurable := true // the stream was open, without a gap, since before w woke
	first := true
	for ctx.Err() == nil {
		gen := k.streamGen.Load().ctx
		sctx, cancel := context.WithCancel(gen)
		rep := k.target(w)
		opened := time.Now()
		if w.kind == waking && !opened.Before(w.wakeAt) && !woke {
			measurable = false
		}
		s, err := k.replicas[rep].client.StreamIsActive(sctx, k.ref(w))
		if err == nil {
			k.rec.streamsOpen.Add(1)
			for {
				msg, rerr := s.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				now := time.Now()
				k.checkAnswer(w, msg.Result, now, now, fmt.Sprintf("stream on replica %d", rep))
				if w.kind == waking && msg.Result && !woke && !now.Before(w.wakeAt) {
					woke = true
					k.rec.mu.Lock()
					if measurable {
						k.rec.pushed = append(k.rec.pushed, answer{w: w, t1: now})
						k.rec.mu.Unlock()
						k.checkWake(w, now)
						k.rec.mu.Lock()
					} else {
						k.rec.wakeUnmeasured++
					}
					k.rec.mu.Unlock()
				}
			}
			k.rec.streamsOpen.Add(-1)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		cut := gen.Err() != nil
		if !cut && status.Code(err) != codes.Canceled {
			k.classify(rep, w, "StreamIsActive", err, time.Now())
		}
		k.rec.mu.Lock()
		if !first {
			k.rec.streamReopens++
		}
		k.rec.mu.Unlock()
		first = false
		if !cut {
			// KEDA waits before reopening a failed stream.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	if w.kind == waking && !woke {
		k.rec.mu.Lock()
		k.rec.wakeUnmeasured++
		k.rec.mu.Unlock()
	}
}

// cutStreams ends every open stream at once, as a KEDA restart or a
// network blip would; the streams reopen.
func (k *keda) cutStreams(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	if old := k.streamGen.Swap(&generation{ctx, cancel}); old != nil {
		old.cancel()
	}
}

// pairs asks both replicas about the same workloads at the same moment:
// every 2s, 200 at random; a pair that differs is asked again one tick
// and one scrape later.
func (k *keda) pairs(ctx context.Context, rng *rand.Rand) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if k.down[0].Load() || k.down[1].Load() {
			continue
		}
		var wg sync.WaitGroup
		for range 200 {
			w := k.f.wl[rng.IntN(len(k.f.wl))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				agree, ok := k.pair(ctx, w)
				if !ok {
					k.rec.mu.Lock()
					k.rec.pairSkipped++
					k.rec.mu.Unlock()
					return
				}
				if agree {
					k.rec.mu.Lock()
					k.rec.pairs++
					k.rec.agreeNow++
					k.rec.mu.Unlock()
					return
				}
				time.Sleep(tick + scrape)
				again, ok := k.pair(ctx, w)
				k.rec.mu.Lock()
				defer k.rec.mu.Unlock()
				k.rec.pairs++
				if ok && again {
					k.rec.agreeWithinTick++
				} else if len(k.rec.disagree) < 10 {
					k.rec.disagree = append(k.rec.disagree, time.Now().UTC().Format("15:04:05")+" "+w.namespace+"/"+w.name+" ("+w.kind.String()+")")
				} else {
					k.rec.disagree = append(k.rec.disagree, "")
				}
			}()
		}
		wg.Wait()
	}
}

func (k *keda) pair(ctx context.Context, w *workload) (agree, ok bool) {
	var a [2]bool
	var errs [2]error
	var t0s, t1s [2]time.Time
	var wg sync.WaitGroup
	for rep := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a[rep], errs[rep], t0s[rep], t1s[rep] = k.isActive(ctx, rep, w)
		}()
	}
	wg.Wait()
	for rep := range 2 {
		if errs[rep] != nil {
			if ctx.Err() == nil {
				k.classify(rep, w, "IsActive (pair)", errs[rep], t1s[rep])
			}
			return false, false
		}
		k.checkAnswer(w, a[rep], t0s[rep], t1s[rep], "pair on replica "+strconv.Itoa(rep))
	}
	return a[0] == a[1], true
}

// p99 takes the bucket's latencies and empties it.
func (r *recorder) p99(rep int) float64 {
	r.mu.Lock()
	l := r.lat[rep]
	r.lat[rep] = nil
	r.mu.Unlock()
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[min(len(l)-1, int(0.99*float64(len(l))))]
}

// wakeSplit splits the measured wakes outside blind spans into the store's
// part (demand to the store's first answer with the rate) and ebb's (that
// answer to the first true pushed), and counts the wakes the store watch
// missed. Call with k.rec.mu held, after recheck.
func (k *keda) wakeSplit() (store, ebb []time.Duration, missed int) {
	for _, a := range k.rec.pushed {
		blinded := false
		for _, b := range k.rec.blinds {
			if !b.from.After(a.t1) && b.to.After(a.w.wakeAt.Add(-wakeBound)) {
				blinded = true
			}
		}
		if blinded {
			continue
		}
		saw := k.watch.sawAt(a.w)
		if saw.IsZero() {
			missed++
			continue
		}
		store = append(store, saw.Sub(a.w.wakeAt))
		ebb = append(ebb, a.t1.Sub(saw))
	}
	slices.Sort(store)
	slices.Sort(ebb)
	return store, ebb, missed
}

// wakes is each measured wake's time from demand to the first true, sorted.
// Call with k.rec.mu held.
func (k *keda) wakes() []time.Duration {
	d := make([]time.Duration, 0, len(k.rec.pushed))
	for _, a := range k.rec.pushed {
		d = append(d, a.t1.Sub(a.w.wakeAt))
	}
	slices.Sort(d)
	return d
}
