package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
)

// informerSync is the first-sync state that the Watcher and the Switcher
// share with their informers' watch error handlers.
type informerSync struct {
	ready    chan struct{}           // closed once the caches are synced
	stopSync context.CancelCauseFunc // ends the first sync; set before the informers start
	lastErr  atomic.Pointer[error]   // the last list or watch error, for a sync timeout
}

// watchErrors replaces client-go's default watch error handler, which logs
// through klog. A refusal (Forbidden, Unauthorized) before the first sync
// ends it with an error that names the verb, resource and namespace; after
// it, stale says what may be stale. Other errors are retried by the
// informer, and a closed watch is only a reconnect.
func (is *informerSync) watchErrors(logger *slog.Logger, stale, resource, ns string, inf cache.SharedIndexInformer) cache.WatchErrorHandlerWithContext {
	return func(_ context.Context, _ *cache.Reflector, err error) {
		verb := "watch"
		if !inf.HasSynced() {
			verb = "list"
		}
		var refused error
		switch {
		case apierrors.IsForbidden(err):
			refused = &AccessError{Verb: verb, Resource: resource, Namespace: ns, Err: apiStatus(err)}
		case apierrors.IsUnauthorized(err):
			refused = fmt.Errorf("%s %s: credentials rejected: %w", verb, resource, apiStatus(err))
		}
		synced := false
		select {
		case <-is.ready:
			synced = true
		default:
		}
		switch {
		case refused != nil && !synced:
			is.stopSync(refused)
		case refused != nil:
			logger.Warn(stale, "err", refused)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
			apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			logger.Debug("watch closed; reconnecting", "resource", resource, "namespace", ns, "err", err)
		default:
			is.lastErr.Store(&err)
			if synced {
				logger.Warn("watch failed; retrying", "resource", resource, "namespace", ns, "err", err)
			}
		}
	}
}

// writePacer paces the writes of the StateWriter and the Switcher.
type writePacer struct {
	limiter flowcontrol.PassiveRateLimiter
	refill  time.Duration // time for one token to come back
	clock   Clock
}

func newWritePacer(qps float32, burst int, clk Clock) writePacer {
	return writePacer{
		limiter: flowcontrol.NewTokenBucketPassiveRateLimiterWithClock(qps, burst, clk),
		refill:  max(time.Duration(float64(time.Second)/float64(qps)), time.Millisecond),
		clock:   clk,
	}
}

// take waits for the rate limiter's next token.
func (p *writePacer) take(ctx context.Context) error {
	for !p.limiter.TryAccept() {
		select {
		case <-p.clock.After(p.refill):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
