package live

import (
	"math"
	"slices"
	"strings"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries"
)

// AllNamespaces names the row of a problem with every namespace.
const AllNamespaces = "*"

// Explain makes rep say what the API server and metrics-server said:
//   - a workload the API server says does not exist is dropped (it was in
//     Prometheus' history only);
//   - a resource without a recommendation says why its workload has no
//     usage, before autopilot's own reason: metrics-server missing, a
//     permission missing, no pods, pods without metrics yet;
//   - a namespace that could not be read and has no row gets one, named
//     "*", as does a namespace asked for that holds no workload.
//
// s is nil when nothing was sampled. The totals are summed again.
func Explain(rep *autopilot.Report, inv *Inventory, s *Sampler) {
	index := inv.index()
	rows := map[string]int{}
	kept := rep.Workloads[:0]
	for _, w := range rep.Workloads {
		key := queries.WorkloadKey{Namespace: w.Namespace, Name: w.Name}
		wl, known := index[key]
		if !known && inv.Complete(w.Namespace) {
			continue
		}
		if s != nil {
			replicas := -1
			if known {
				replicas = wl.Replicas
			}
			if why := s.Why(key, replicas); why != "" {
				for i := range w.Containers {
					because(&w.Containers[i].CPU, why)
					because(&w.Containers[i].Memory, why)
				}
			}
		}
		kept = append(kept, w)
		rows[w.Namespace]++
	}
	rep.Workloads = kept

	problems := inv.Problems()
	if s != nil {
		problems = append(problems, s.Problems()...)
	}
	why := map[string][]string{}
	var order []string
	for _, p := range problems {
		ns := p.Namespace
		if ns == "" {
			ns = AllNamespaces
		}
		if rows[ns] > 0 || ns == AllNamespaces && len(rep.Workloads) > 0 {
			continue
		}
		if !slices.Contains(why[ns], p.Err.Error()) {
			if why[ns] == nil {
				order = append(order, ns)
			}
			why[ns] = append(why[ns], p.Err.Error())
		}
	}
	for _, ns := range inv.namespaces {
		if rows[ns] == 0 && why[ns] == nil {
			order = append(order, ns)
			why[ns] = []string{"no Deployments or StatefulSets in namespace " + `"` + ns + `"`}
		}
	}
	for _, ns := range order {
		msg := strings.Join(why[ns], "; ")
		rep.Workloads = append(rep.Workloads, autopilot.WorkloadReport{
			Namespace: ns, Name: AllNamespaces, Severity: autopilot.SeverityUnknown,
			Containers: []autopilot.ContainerReport{{
				Name:   "-",
				CPU:    autopilot.ResourceRecommendation{NotEnoughData: msg},
				Memory: autopilot.ResourceRecommendation{NotEnoughData: msg},
			}},
		})
	}

	var now, rec float64
	for _, w := range rep.Workloads {
		now += w.Cost.MonthlyNow
		rec += w.Cost.MonthlyRecommended
	}
	now, rec = cents(now), cents(rec)
	rep.Totals = autopilot.Cost{MonthlyNow: now, MonthlyRecommended: rec, MonthlySavings: cents(now - rec)}
}

// because puts why before a resource's reason for having no
// recommendation; it is the whole reason when there was no sample at all.
func because(r *autopilot.ResourceRecommendation, why string) {
	switch {
	case r.NotEnoughData == "":
	case r.Samples == 0:
		r.NotEnoughData = why
	default:
		r.NotEnoughData = why + "; " + r.NotEnoughData
	}
}

func cents(v float64) float64 { return math.Round(v*100) / 100 }
