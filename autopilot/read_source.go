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
	// VLLM makes the pods report a KV cache: the framebuffer is then
	// preallocated, and KV-cache usage follows GPU utilization.
	VLLM bool
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
				if w.VLLM {
					h.KVCache(w.Key, VLLM, t, min(util/100, 1))
				}
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

// podName names a simulated StatefulSet-style pod: "<name>-<ordinal>".
func podName(k queries.WorkloadKey, i int) string { return k.Name + "-" + strconv.Itoa(i) }
