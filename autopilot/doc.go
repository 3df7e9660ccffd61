// Package autopilot recommends right-sized CPU, memory, GPU, replica and
// autoshutdown settings for workloads from their usage history, with the
// evidence and the money behind each recommendation.
//
// History is streamed into a History (decaying histograms, daily peaks,
// backtests, fixed-size chart bins), so memory stays bounded whatever the
// history's length; Recommend turns it into a Report, which the report
// package renders as a table, JSON, CSV, Markdown or HTML.
package autopilot
