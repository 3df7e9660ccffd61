package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/scaler"
)

// storeHealth follows the store's answers to every query, so that /readyz
// can say what is wrong and the log can say when the store is back.
type storeHealth struct {
	url    string // --prometheus-url, redacted
	clock  clock.Clock
	logger *slog.Logger

	mu      sync.Mutex
	lastErr *queries.QueryError
	lastAt  time.Time // when lastErr came
	since   time.Time // first failure of the store's current outage; zero while it answers
}

func newStoreHealth(storeURL string, clk clock.Clock, logger *slog.Logger) *storeHealth {
	if u, err := url.Parse(storeURL); err == nil {
		storeURL = u.Redacted()
	}
	return &storeHealth{url: storeURL, clock: clk, logger: logger}
}

// observe is the source's Observe hook: it records every failure but a
// canceled query, and logs once when the store answers after an outage. A
// refused query (bad_data) is the query's fault, not the store's: it is
// the last error, but neither starts nor ends an outage.
func (h *storeHealth) observe(st promapi.QueryStats) {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var qe *queries.QueryError
	if st.Err == nil {
		if !h.since.IsZero() {
			h.logger.Info("store answers again", "url", h.url, "down", now.Sub(h.since).String(), "since", h.since.UTC().Format(time.RFC3339))
			h.since = time.Time{}
		}
		return
	}
	if !errors.As(st.Err, &qe) || qe.Kind == queries.KindCanceled {
		return
	}
	h.lastErr, h.lastAt = qe, now
	if qe.Kind != queries.KindBadData && h.since.IsZero() {
		h.since = now
	}
}

// notReady is /readyz's body while the collector is not ready: the last
// error, its kind, since when the store fails, the URL, and what to do.
func (h *storeHealth) notReady() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil {
		return fmt.Sprintf("not ready: no answer from store %s yet", h.url)
	}
	qe := h.lastErr
	at := h.since
	if at.IsZero() {
		at = h.lastAt
	}
	msg := fmt.Sprintf("not ready: store %s %s since %s: %v", h.url, kindPhrase(qe.Kind), at.UTC().Format("15:04:05Z"), cause(qe))
	if hint := storeHint(qe.Kind); hint != "" {
		msg += "; " + hint
	}
	return msg
}

// kindPhrase says a kind of QueryError in words.
func kindPhrase(kind string) string {
	switch kind {
	case queries.KindUnreachable:
		return "unreachable"
	case queries.KindTimeout:
		return "unreachable (timed out)"
	case queries.KindWrongPath:
		return "wrong path"
	case queries.KindAuth:
		return "unauthorized"
	case queries.KindBadData:
		return "refused a query"
	case queries.KindBadResponse:
		return "answered nonsense"
	}
	return "failing"
}

// cause is the root of a query error: a transport error without the
// "Post URL" the health message names already.
func cause(qe *queries.QueryError) error {
	var ue *url.Error
	if errors.As(qe.Err, &ue) {
		return ue.Err
	}
	return qe.Err
}

// storeHint says what usually fixes a kind of store error.
func storeHint(kind string) string {
	switch kind {
	case queries.KindUnreachable, queries.KindTimeout:
		return "check --prometheus-url and that the store runs and is reachable from ebb"
	case queries.KindWrongPath:
		return "--prometheus-url must be the API root, such as http://prometheus:9090 or http://vmselect:8481/select/0/prometheus; ebb appends /api/v1/query"
	case queries.KindAuth:
		return "set the store's credentials with --bearer-token-file, --basic-auth-user and --basic-auth-password-file, or --header (e.g. 'X-Scope-OrgID: tenant' for Mimir)"
	}
	return ""
}

// checkedStore counts the collector's store check (Ping) in
// ebb_query_errors_total, like any query.
type checkedStore struct {
	*promapi.Prometheus
	metrics *scaler.Metrics
}

var _ queries.Pinger = checkedStore{}

func (s checkedStore) Ping(ctx context.Context, at time.Time) error {
	err := s.Prometheus.Ping(ctx, at)
	s.metrics.ObserveCheck(err)
	return err
}
