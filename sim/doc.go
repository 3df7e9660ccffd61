// Package sim is a synthetic cluster of workloads whose request rates and
// GPU utilization are computed exactly from traffic models and real
// inference traces; it implements queries.Source for the demo, tests and
// benchmarks.
//
// A Cluster answers at the level of signals, not PromQL: requests and gpu
// shapes for all workloads at once, the model-server shapes (queue,
// running, kvcache, ttft) for workloads that run a BatchingServer, a fluid
// model of a continuously batching LLM server, and query shapes only for
// expressions registered with HandleQuery. Traffic shapes integrate instead of
// sampling, so a window's value is exact and costs O(1) (Steady, Diurnal,
// Bursty, Idle, Off) or O(log n) (Replay of a Trace) per workload.
//
// The embedded traces (AzureCodeTrace, AzureConvTrace) are the Azure LLM
// inference trace 2023 from Patel et al., "Splitwise: Efficient Generative
// LLM Inference Using Phase Splitting", ISCA 2024, published in
// Azure/AzurePublicDataset under CC-BY 4.0; see traces/README.md.
package sim
