package autopilot

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// SyntheticWorkload describes the pods of a workload of a simulated
// cluster, whose queries.Source answers only the requests and gpu signals:
// SourceReader derives each pod's CPU and memory from its share of the
// request rate with this linear model, deterministically.
type SyntheticWorkload struct {
	Key            queries.WorkloadKey
	Replicas       int
	GPUsPerReplica int
	// GPUModel is dcgm-exporter's modelName, e.g. "NVIDIA A100-SXM4-40GB".
	GPUModel string
	// Current is the one container's ("app") requests and limits.
	Current Resources
	// A pod uses CPUBase + CPUPerRPS * its request rate cores, and
	// MemoryBase + MemoryPerRPS * its request rate bytes.
	CPUBase, CPUPerRPS       float64
	MemoryBase, MemoryPerRPS float64
	// FramebufferMiB is the framebuffer a GPU has in use.
	FramebufferMiB float64
	// Server is the model server the pods run, "" for none: their KV-cache
	// usage and queue are then read from the source's kvcache and queue
	// signals (the simulator's batching servers answer them), and the
	// framebuffer counts as preallocated.
	Server ModelServer
}

// SourceReader reads the history of Workloads, and of no other, from a
// queries.Source (the embedded simulator) by evaluating the requests and gpu signals at every step of the history,
// with the window of one step.
type SourceReader struct {
	Source    queries.Source
	Workloads []SyntheticWorkload
	// Progress, when set, is called after each day of history.
	Progress func(done, total int)
}

// Read streams the history from the source into h.
func (r *SourceReader) Read(ctx context.Context, h *History) error {
	byKey := make(map[queries.WorkloadKey]*SyntheticWorkload, len(r.Workloads))
	for i := range r.Workloads {
		w := &r.Workloads[i]
		if w.Replicas < 0 || w.GPUsPerReplica < 0 {
			return fmt.Errorf("workload %s: negative replicas or GPUs", w.Key)
		}
		byKey[w.Key] = w
		h.SetReplicas(w.Key, w.Replicas)
		for p := range w.Replicas {
			h.SetResources(ContainerRef{Workload: w.Key, Pod: podName(w.Key, p), Container: "app"}, w.Current)
		}
	}
	reqShape := queries.Shape{Signal: queries.SignalRequests, Window: h.step}
	minuteShape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	servers := false
	for _, w := range r.Workloads {
		servers = servers || w.Server != ""
	}
	gpuShape := queries.Shape{Signal: queries.SignalGPU, Window: h.step}
	days := int(h.end.Sub(h.start)/(24*time.Hour)) + 1
	lastDay := -1
	for t := h.start.Add(h.step); !t.After(h.end); t = t.Add(h.step) {
		reqs, err := r.Source.Instant(ctx, reqShape, t)
		if err != nil {
			return fmt.Errorf("read request rate at %s: %w", t.Format(time.RFC3339), err)
		}
		gpus, err := r.Source.Instant(ctx, gpuShape, t)
		if err != nil {
			return fmt.Errorf("read gpu at %s: %w", t.Format(time.RFC3339), err)
		}
		if err := r.readPeaks(ctx, h, minuteShape, t, byKey); err != nil {
			return err
		}
		rps := make(map[queries.WorkloadKey]float64, len(reqs))
		for _, s := range reqs {
			if byKey[s.Workload] == nil {
				continue // not a workload of the read
			}
			h.RequestRate(s.Workload, t, s.Value)
			rps[s.Workload] = s.Value
		}
		// The source's workloads are all in the mesh: one without a
		// sample received no requests (Istio creates its counters on the
		// first request).
		for _, w := range r.Workloads {
			if _, ok := rps[w.Key]; !ok {
				h.RequestRate(w.Key, t, 0)
			}
		}
		for _, w := range r.Workloads {
			if w.Replicas == 0 {
				continue
			}
			per := rps[w.Key] / float64(w.Replicas)
			for p := range w.Replicas {
				ref := ContainerRef{Workload: w.Key, Pod: podName(w.Key, p), Container: "app"}
				h.CPU(ref, t, w.CPUBase+w.CPUPerRPS*per)
				h.Memory(ref, t, w.MemoryBase+w.MemoryPerRPS*per)
			}
		}
		for _, s := range gpus {
			w := byKey[s.Workload]
			if w == nil || w.Replicas == 0 || w.GPUsPerReplica == 0 {
				continue
			}
			util := s.Value / float64(w.Replicas) // the mean of each pod's GPUs
			for p := range w.Replicas {
				pod := podName(w.Key, p)
				for g := range w.GPUsPerReplica {
					ref := GPURef{Workload: w.Key, Pod: pod, GPU: strconv.Itoa(g), Model: w.GPUModel}
					h.GPUUtil(ref, t, util)
					spec, _ := specOf(GPUClass(w.GPUModel))
					h.Framebuffer(ref, t, w.FramebufferMiB, spec.memMiB)
				}
			}
		}
		if servers {
			if err := r.readServers(ctx, h, t, byKey); err != nil {
				return err
			}
		}
		if d := int(t.Sub(h.start) / (24 * time.Hour)); d != lastDay {
			lastDay = d
			if r.Progress != nil {
				r.Progress(d+1, days)
			}
		}
	}
	return nil
}

// readPeaks adds each workload's highest 1-minute request rate in the step
// that ends at t: the rates of the whole minutes of the step (of the step
// itself when it is shorter than two minutes).
func (r *SourceReader) readPeaks(ctx context.Context, h *History, minute queries.Shape, t time.Time, byKey map[queries.WorkloadKey]*SyntheticWorkload) error {
	peak := map[queries.WorkloadKey]float64{}
	shape, n := minute, int(h.step/time.Minute)
	if n < 2 {
		shape, n = queries.Shape{Signal: queries.SignalRequests, Window: h.step}, 1
	}
	for i := range n {
		at := t.Add(-time.Duration(i) * shape.Window)
		reqs, err := r.Source.Instant(ctx, shape, at)
		if err != nil {
			return fmt.Errorf("read 1-minute request rate at %s: %w", at.Format(time.RFC3339), err)
		}
		for _, s := range reqs {
			if byKey[s.Workload] != nil {
				peak[s.Workload] = max(peak[s.Workload], s.Value)
			}
		}
	}
	for _, w := range r.Workloads {
		h.RequestPeak(w.Key, t, peak[w.Key])
	}
	return nil
}

// readServers adds the model servers' KV-cache usage and queue at t: the
// kvcache signal is the sum over a workload's replicas of each one's usage
// in percent, each replica taken at the mean; the queue the total waiting.
func (r *SourceReader) readServers(ctx context.Context, h *History, t time.Time, byKey map[queries.WorkloadKey]*SyntheticWorkload) error {
	for _, sig := range []queries.Signal{queries.SignalKVCache, queries.SignalQueue} {
		shape := queries.Shape{Signal: sig, Server: queries.ServerAuto, Window: h.step}
		out, err := r.Source.Instant(ctx, shape, t)
		if err != nil {
			return fmt.Errorf("read %s at %s: %w", sig, t.Format(time.RFC3339), err)
		}
		for _, s := range out {
			w := byKey[s.Workload]
			if w == nil || w.Server == "" || w.Replicas == 0 {
				continue
			}
			if sig == queries.SignalKVCache {
				h.KVCache(w.Key, w.Server, t, s.Value/float64(w.Replicas)/100)
			} else {
				h.RequestsWaiting(w.Key, w.Server, t, s.Value)
			}
		}
	}
	return nil
}

// podName names a simulated StatefulSet-style pod: "<name>-<ordinal>".
func podName(k queries.WorkloadKey, i int) string { return k.Name + "-" + strconv.Itoa(i) }
