package main

import (
	"testing"
	"time"
)

// TestTruth checks the fleet's truth the checks compare ebb with: a
// diurnal workload's last demand, a waking one's, and when demand that
// appears during a store fault can be seen.
func TestTruth(t *testing.T) {
	start := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	f := newFleet(20, start, 80*time.Second, start.Add(time.Minute), start.Add(2*time.Minute))
	d := &workload{kind: diurnal} // phase 0: on [0s, 40s), off [40s, 80s), ...
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	if got := f.lastDemand(d, at(10)); !got.IsZero() {
		t.Errorf("before the exporter counted: last demand %s, want none", got.Sub(start))
	}
	f.counted.Store(at(0).UnixNano())
	for _, tt := range []struct {
		t, want time.Time
	}{
		{at(10), at(10)},
		{at(50), at(40)},
		{at(79), at(40)},
		{at(85), at(85)},
		{at(130), at(120)},
	} {
		if got := f.lastDemand(d, tt.t); !got.Equal(tt.want) {
			t.Errorf("diurnal lastDemand(%s) = %s, want %s", tt.t.Sub(start), got.Sub(start), tt.want.Sub(start))
		}
		if got, want := f.active(d, tt.t), tt.t.Equal(tt.want); got != want {
			t.Errorf("diurnal active(%s) = %v, want %v", tt.t.Sub(start), got, want)
		}
	}
	// Demand that ended before the exporter's counters first counted never
	// reached the store: a diurnal workload off since 40s has none at 50s
	// if the exporter counted first at 45s, and its demand from 80s on.
	f.counted.Store(at(45).UnixNano())
	if got := f.lastDemand(d, at(50)); !got.IsZero() {
		t.Errorf("demand that ended before the exporter counted: last demand %s, want none", got.Sub(start))
	}
	if got := f.lastDemand(d, at(85)); !got.Equal(at(85)) {
		t.Errorf("demand after the exporter counted: last demand %s, want 85s", got.Sub(start))
	}
	f.counted.Store(at(0).UnixNano())
	w := &workload{kind: waking, wakeAt: at(90)}
	if got := f.lastDemand(w, at(89)); !got.IsZero() {
		t.Errorf("waking before its wake: last demand %s, want none", got.Sub(start))
	}
	if got := f.lastDemand(w, at(91)); !got.Equal(at(91)) {
		t.Errorf("waking after its wake: last demand %s, want 91s", got.Sub(start))
	}
	if got := f.lastDemand(&workload{kind: idle}, at(100)); !got.IsZero() {
		t.Errorf("idle: last demand %s, want none", got.Sub(start))
	}
	// The fleet's mix and its spread wake times.
	kinds := map[kind]int{}
	wakes := map[time.Time]bool{}
	for _, w := range f.wl {
		kinds[w.kind]++
		if w.kind == waking {
			wakes[w.wakeAt] = true
			if w.wakeAt.Before(at(60)) || !w.wakeAt.Before(at(120)) {
				t.Errorf("%s wakes at %s, outside [60s, 120s)", w.name, w.wakeAt.Sub(start))
			}
		}
	}
	if kinds[steady] != 8 || kinds[idle] != 6 || kinds[diurnal] != 3 || kinds[waking] != 2 || kinds[gpu] != 1 {
		t.Errorf("mix of 20: %v", kinds)
	}
	if len(wakes) != 2 {
		t.Errorf("2 waking workloads share wake times: %v", wakes)
	}

	k := &keda{f: f, rec: &recorder{}}
	k.rec.addBlind(at(100), at(130))
	if got := k.seenBy(at(50)); !got.Equal(at(50).Add(wakeBound)) {
		t.Errorf("seenBy before the fault = %s, want %s", got.Sub(start), at(50).Add(wakeBound).Sub(start))
	}
	if got := k.seenBy(at(110)); !got.Equal(at(130).Add(wakeBound)) {
		t.Errorf("seenBy during the fault = %s, want %s", got.Sub(start), at(130).Add(wakeBound).Sub(start))
	}
}

// TestRecheck checks that an idle answer excused only by a blind span
// without a measured end (Prometheus restarting) is checked again once the
// span has its end, and counts as false if the demand could be seen by then.
func TestRecheck(t *testing.T) {
	start := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	f := newFleet(20, start, 80*time.Second, start.Add(time.Minute), start.Add(2*time.Minute))
	f.counted.Store(start.UnixNano())
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	w := &workload{kind: waking, wakeAt: at(100), name: "waking-api-00017", namespace: "infra-00"}
	k := &keda{f: f, rec: &recorder{}}

	// Prometheus restarts at 95s; its end is estimated at 215s. The demand
	// appears at 100s; an idle answer at 112s is excused for now.
	bl := k.rec.openBlind(at(95), at(215))
	k.checkAnswer(w, false, at(112), at(112), "IsActive on replica 0")
	if k.rec.falseIdleCount != 0 || len(k.rec.pending) != 1 {
		t.Fatalf("during the open blind: %d false, %d held; want 0 and 1", k.rec.falseIdleCount, len(k.rec.pending))
	}
	// The new Prometheus had a rate at 101s: the demand could be seen by
	// 101s + seeBound, before the answer at 112s.
	k.rec.closeBlind(bl, at(101))
	k.recheck()
	if k.rec.falseIdleCount != 1 || k.rec.rechecked != 1 {
		t.Errorf("after the blind closed at 101s: %d false of %d rechecked, want 1 of 1", k.rec.falseIdleCount, k.rec.rechecked)
	}

	// Closed at 110s instead, the answer at 112s is within seeBound of it.
	k = &keda{f: f, rec: &recorder{}}
	bl = k.rec.openBlind(at(95), at(215))
	k.checkAnswer(w, false, at(112), at(112), "IsActive on replica 0")
	k.rec.closeBlind(bl, at(110))
	k.recheck()
	if k.rec.falseIdleCount != 0 {
		t.Errorf("after the blind closed at 110s: %d false, want 0 (seen by %s)", k.rec.falseIdleCount, at(110).Add(seeBound).Sub(start))
	}
}

// TestWakeSplit checks that a wake splits into the store's part and ebb's
// at the store's first answer with the rate, and that a wake a fault
// covered is left out.
func TestWakeSplit(t *testing.T) {
	start := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	f := &fleet{start: start}
	clear := &workload{i: 0, kind: waking, wakeAt: at(10_000)}
	faulted := &workload{i: 1, kind: waking, wakeAt: at(50_000)}
	unseen := &workload{i: 2, kind: waking, wakeAt: at(90_000)}
	w := newStoreWatch(f, "http://127.0.0.1:9")
	w.saw[clear.i] = at(12_500)
	w.saw[faulted.i] = at(52_000)
	k := &keda{f: f, rec: &recorder{}, watch: w}
	k.rec.addBlind(at(45_000), at(55_000))
	k.rec.pushed = []answer{{w: clear, t1: at(13_700)}, {w: faulted, t1: at(60_000)}, {w: unseen, t1: at(93_000)}}
	store, ebb, missed := k.wakeSplit()
	if len(store) != 1 || store[0] != 2500*time.Millisecond || ebb[0] != 1200*time.Millisecond || missed != 1 {
		t.Errorf("wakeSplit = store %v, ebb %v, missed %d; want [2.5s], [1.2s], 1", store, ebb, missed)
	}
}

// TestTicks checks the charts' axis steps and labels: 1, 2 or 5 times a
// power of ten, written with the decimals the step needs.
func TestTicks(t *testing.T) {
	for _, tt := range []struct {
		raw, step float64
		v         float64
		label     string
	}{
		{0.37, 0.5, 1.5, "1.5"},
		{552, 1000, 2000, "2000"},
		{78, 100, 300, "300"},
		{1.5, 2, 10, "10"},
		{0.012, 0.02, 0.06, "0.06"},
	} {
		if got := niceStep(tt.raw); got != tt.step {
			t.Errorf("niceStep(%g) = %g, want %g", tt.raw, got, tt.step)
		}
		if got := tickLabel(tt.v, tt.step); got != tt.label {
			t.Errorf("tickLabel(%g, %g) = %q, want %q", tt.v, tt.step, got, tt.label)
		}
	}
}
