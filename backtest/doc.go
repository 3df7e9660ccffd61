// Package backtest replays workloads' activity and replicas through
// scale-to-zero policies side by side (KEDA's cooldown, Knative's grace
// after its stable window, KubeElasti's cooldown, ebb's fixed idleAfter and
// ebb auto, each modelled with its documented timing) and reports
// replica-hours, GPU-hours, money, cold starts and the time requests waited
// for them, per workload and in total.
//
// The workloads come from the store's history, the simulator (SimFleet,
// RhythmFleet) or a trace (RhythmFleet with TraceDemand,
// StretchedTraceFleet). ebb's policies run through shutdown's own Tracker,
// Policy and Learn, as `ebb serve` does; there is one idle policy and one
// backtester: autopilot's idleAfter advice replays each candidate through
// a Replayer, a sample at a time, with the Ebb policy.
package backtest
