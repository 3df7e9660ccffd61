package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ebbscale/ebb/autopilot"
)

// DocsURL is where the how-tos that GPU advice links to live.
const DocsURL = "https://github.com/ebbscale/ebb/blob/main/docs/"

// howTo returns the how-to of a GPU action, "" for none.
func howTo(g *autopilot.GPURecommendation) (title, url string) {
	if g == nil {
		return "", ""
	}
	switch g.Action {
	case autopilot.GPUMIG:
		return "How to run a workload on a MIG slice", DocsURL + "gpu-mig.md"
	case autopilot.GPUTimeSlicing:
		return "How to share a GPU by time-slicing", DocsURL + "gpu-time-slicing.md"
	}
	return "", ""
}

// quote renders a YAML string scalar that stays a string: "2.82".
func quote(s string) string { return strconv.Quote(s) }

// ResourcesPatch is the strategic merge patch of a workload's pod template
// that applies its CPU, memory and GPU recommendations, for
// `kubectl patch deployment NAME --patch-file FILE` (or statefulset). A
// container without enough data keeps its resources; a limit recommended
// away is deleted (null). It is "" when nothing changes.
func ResourcesPatch(wl autopilot.WorkloadReport) string {
	var b strings.Builder
	gpuKey, gpuVal, dropGPU := gpuResource(wl.GPU)
	for i, c := range wl.Containers {
		req, lim := resourceLines(c)
		if i == 0 && gpuKey != "" {
			lim = append(lim, fmt.Sprintf("%s: %s", gpuKey, gpuVal))
			if dropGPU {
				lim = append(lim, "nvidia.com/gpu: null")
			}
		}
		if len(req) == 0 && len(lim) == 0 {
			continue
		}
		fmt.Fprintf(&b, "      - name: %s\n        resources:\n", c.Name)
		if len(req) > 0 {
			b.WriteString("          requests:\n")
			for _, l := range req {
				fmt.Fprintf(&b, "            %s\n", l)
			}
		}
		if len(lim) > 0 {
			b.WriteString("          limits:\n")
			for _, l := range lim {
				fmt.Fprintf(&b, "            %s\n", l)
			}
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "spec:\n  template:\n    spec:\n      containers:\n" + b.String()
}

// resourceLines are a container's requests and limits to set.
func resourceLines(c autopilot.ContainerReport) (req, lim []string) {
	if r := c.CPU; r.NotEnoughData == "" && r.Request > 0 {
		req = append(req, "cpu: "+autopilot.FormatCPU(r.Request))
		switch {
		case r.Limit > 0:
			lim = append(lim, "cpu: "+autopilot.FormatCPU(r.Limit))
		case r.CurrentLimit > 0:
			lim = append(lim, "cpu: null")
		}
	}
	if r := c.Memory; r.NotEnoughData == "" && r.Request > 0 {
		req = append(req, "memory: "+autopilot.FormatMemory(r.Request))
		switch {
		case r.Limit > 0:
			lim = append(lim, "memory: "+autopilot.FormatMemory(r.Limit))
		case r.CurrentLimit > 0:
			lim = append(lim, "memory: null")
		}
	}
	return req, lim
}

// gpuResource is the GPU limit a GPU recommendation sets on the first
// container: fewer GPUs, a MIG slice in place of the GPU, or none. Time-
// slicing and a smaller GPU change the node, not the resource.
func gpuResource(g *autopilot.GPURecommendation) (key, value string, dropGPU bool) {
	if g == nil {
		return "", "", false
	}
	switch g.Action {
	case autopilot.GPUFewer:
		if g.GPUs == 0 {
			return "nvidia.com/gpu", "null", false
		}
		return "nvidia.com/gpu", strconv.Itoa(int(g.GPUs)), false
	case autopilot.GPUMIG:
		return "nvidia.com/mig-" + strings.TrimPrefix(g.Recommended, "MIG "), "1", true
	}
	return "", "", false
}

// ScalerAddress is the ebb address the ScaledObject fragments name, as
// deploy/ installs it.
const ScalerAddress = "ebb.ebb-system.svc:9090"

// ScaledObjectPatch is the ScaledObject spec that applies a workload's
// scaling and autoshutdown advice through ebb's requests signal, "" when
// there is none.
func ScaledObjectPatch(wl autopilot.WorkloadReport) string {
	s, a := wl.Scaling, wl.Autoshutdown
	if s == nil || s.NotEnoughData != "" {
		if a == nil || !a.Recommended {
			return ""
		}
		// Autoshutdown without a per-replica target: up to today's
		// replicas, shut down when idle.
		return fmt.Sprintf("spec:\n  minReplicaCount: 0\n  maxReplicaCount: %d\n  triggers:\n  - type: external\n    metadata:\n      scalerAddress: %s\n      signal: requests\n      target: \"1\" # no request rate in the history to size a target: set yours\n      activation: \"0\"\n      idleAfter: %s\n",
			max(wl.Replicas, 1), ScalerAddress, a.IdleAfter)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "spec:\n  minReplicaCount: %d\n  maxReplicaCount: %d\n  triggers:\n  - type: external\n    metadata:\n", s.MinReplicas, s.MaxReplicas)
	fmt.Fprintf(&b, "      scalerAddress: %s\n      signal: requests\n      target: %s\n      activation: %s\n",
		ScalerAddress, quote(strconv.FormatFloat(s.TargetRPS, 'f', -1, 64)), quote(strconv.FormatFloat(s.Activation, 'f', -1, 64)))
	if a != nil && a.Recommended {
		fmt.Fprintf(&b, "      idleAfter: %s\n", a.IdleAfter)
	}
	return b.String()
}
