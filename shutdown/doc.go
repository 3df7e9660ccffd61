// Package shutdown decides, as a pure function of a workload's state, its
// policy and the time, whether the workload should run or may be shut down.
//
// # Decisions
//
// Policy.Decide returns a Decision: active or idle, a Reason, and Until, the
// instant at which the answer changes if only time passes (zero when time
// alone will not change it). The first reason that applies wins:
//
//  1. ReasonHeld: ebb's activator holds requests for the workload: demand
//     ebb sees itself, known whatever the store says. Active.
//  2. ReasonBadConfig: an ebb.dev/ annotation is broken. No answer
//     (Decision.Known is false): a typo neither shuts a workload down nor
//     wakes it.
//  3. ReasonUnknown: no trustworthy data (source failing for longer than
//     the allowed staleness, no data yet, idle clock not recovered after a
//     restart, annotations not read yet, a value that is not a number). No
//     answer: an outage neither shuts a workload down nor wakes it.
//  4. ReasonOptOut: ebb.dev/autoshutdown: "false". Active.
//  5. ReasonTraffic: value > activation. Active.
//  6. ReasonKeepAwake: inside a keep-awake window. Active until the window
//     ends.
//  7. ReasonLearnedHours: inside a keep-awake hour learned by an auto
//     policy (see below). Active until the hour ends.
//  8. ReasonMinUptime: woke less than MinUptime ago (default 5m), so that
//     it cannot flap. Active until WokeAt+MinUptime.
//  9. ReasonRecent: last active less than IdleAfter ago (default 15m).
//     Active until LastActive+IdleAfter.
//  10. ReasonPreWake: inside an auto policy's pre-wake window, when the
//     next activity is expected. Active until the window closes.
//  11. ReasonIdle: none of the above. Idle until the next keep-awake window
//     opens or the next pre-wake.
//
// Reasons 6 to 10 expire with time. When several apply, the reason is the
// first, and Until is when the last of them ends (following on into any
// window open at that instant).
//
// KEDA waits its own cooldownPeriod after IsActive turns false before it
// scales to zero, so the effective wait is IdleAfter + cooldownPeriod.
//
// # idleAfter: auto
//
// Learn reads a workload's Activity (its active spans over the last 7 days)
// and returns a Model: the keep-alive that would have cost least over its
// idle gaps, a cold start priced at the fixed idle-after, a pre-wake
// window when the latest gaps longer than the keep-alive and the lead are
// regular (a job every 2h ± 2m is woken 2m30s before the shortest of those
// gaps and let go right after its work),
// and keep-awake hours in which the workload was busy 90% of the time. With
// less than MinHistory of history, or gaps that are neither a regular
// rhythm nor at least 8 with at most 10% beyond 4h, it falls back to the fixed idle-after and says why. Pre-
// wakes not followed by demand count against PreWakeBudget a day; past it,
// the model backs off to the fixed idle-after. Model.Apply puts a model in
// force in a Policy; Decide stays pure and demand, MinUptime and the
// unknown rules come first as for every policy.
//
// A Tracker keeps one workload's idle clock from successive observations
// (last activity, last wake, trust in the data) and is not Known until
// Recover has merged the last activity from the store's history, so that a
// restart never answers idle early.
//
// # Annotations
//
// On a Deployment or StatefulSet:
//
//	ebb.dev/idle-after: "30m"      # a Go duration, > 0 and <= 720h, or "auto"
//	ebb.dev/autoshutdown: "false"  # opt out; "true" is the default
//	ebb.dev/keep-awake: "0 8 * * 1-5 for 12h in Europe/Berlin; 0 10 * * 6 for 4h"
//
// IdleAfter comes from ebb.dev/idle-after, else from the trigger metadata's
// idleAfter, else from the server's --idle-after (see Resolve).
//
// ebb.dev/keep-awake holds up to 16 windows separated by ";", each
//
//	<cron> for <duration> [in <zone>]
//
// <cron> is five standard fields (minute, hour, day of month, month, day of
// week; names such as MON-FRI and JAN allowed; Sunday is 0, not 7) or one of
// @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually).
// <duration> is a Go duration, > 0 and <= 168h: 12h, 90m, 1h30m. <zone> is an
// IANA time zone such as Europe/Berlin or America/New_York; UTC when left
// out. Examples:
//
//	0 8 * * 1-5 for 12h in Europe/Berlin     weekdays 08:00-20:00 Berlin time
//	0 20 * * * for 12h in America/New_York   every night 20:00-08:00
//	@daily for 24h in Asia/Tokyo             always (prefer autoshutdown: "false")
//	0 9 1 * * for 72h                        the first three days of each month from 09:00 UTC
//
// A window is open while the wall clock in its zone reads a time within
// [start, start+duration) for a start its cron expression matches. So a
// window keeps its wall-clock hours across daylight-saving changes (08:00
// for 12h ends at 20:00 local, and a 20:00-08:00 night lasts 11h or 13h of
// real time on the nights the clocks change); a start in the hour that is
// skipped in spring opens when the clocks jump, if the window has not ended
// by then; and a window within the hour that repeats in autumn applies to
// both passes. Windows that overlap or touch merge into one.
//
// ebb writes ebb.dev/last-active (RFC 3339, to the minute) and ebb.dev/state
// ("active: activity within idle-after 15m", "idle: no activity within
// idle-after 15m"); see StateAnnotations.
package shutdown
