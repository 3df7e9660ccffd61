package promapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/ebbscale/ebb/queries"
)

// requestsAnswer is a requests answer naming workloads w<from>..w<to-1> of
// namespace shop.
func requestsAnswer(from, to int) string {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := from; i < to; i++ {
		if i > from {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metric":{"destination_workload_namespace":"shop","destination_workload":"w%d"},"value":[1767225600,"%d"]}`, i, i)
	}
	b.WriteString(`]}}`)
	return b.String()
}

func TestInstantReusesLabelStringsAcrossAnswers(t *testing.T) {
	var body atomic.Value
	body.Store(requestsAnswer(0, 3))
	p := newSource(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body.Load().(string))
	})
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	first, err := p.Instant(context.Background(), shape, epoch)
	if err != nil {
		t.Fatal(err)
	}
	body.Store(requestsAnswer(1, 4)) // w0 is gone, w3 is new
	second, err := p.Instant(context.Background(), shape, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(second); got != "[{shop/w1 1} {shop/w2 2} {shop/w3 3}]" {
		t.Fatalf("second answer decoded as %s", got)
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	for i, s := range second[:2] {
		if o := first[i+1].Workload; !same(s.Workload.Name, o.Name) || !same(s.Workload.Namespace, o.Namespace) {
			t.Errorf("%s: the second answer allocated its labels anew instead of reusing the first's", s.Workload)
		}
	}
	if !same(second[2].Workload.Namespace, first[0].Workload.Namespace) {
		t.Errorf("namespace of the new workload w3 not reused")
	}
}

// TestAnswerCacheForgetsWhatAnswersNoLongerHold keeps the cache bounded by
// the answers' size, whatever the churn of workloads.
func TestAnswerCacheForgetsWhatAnswersNoLongerHold(t *testing.T) {
	p := &Prometheus{caches: make(map[queries.Shape]*answerCache)}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	for answer := range 20 {
		var c *answerCache
		p.withAnswerCache(shape, func(ac *answerCache) (int, error) {
			c = ac
			for i := range 100 {
				c.intern(fmt.Appendf(nil, "w%d", answer*100+i)) // every answer new names
			}
			return 100, nil
		})
		if n := len(c.strs); n > 2*100+64 {
			t.Fatalf("after answer %d the cache holds %d values for answers of 100", answer, n)
		}
	}
	c := p.answerCache(shape)
	p.withAnswerCache(shape, func(c *answerCache) (int, error) {
		c.intern([]byte("w1999")) // in the last answer
		return 1, nil
	})
	if n := len(c.strs); n != 1 {
		t.Errorf("after an answer of 1 value the cache holds %d values, want 1", n)
	}
	if c.rows != 1 {
		t.Errorf("rows = %d, want 1", c.rows)
	}
	p.withAnswerCache(shape, func(*answerCache) (int, error) { return 0, fmt.Errorf("decode failed") })
	if c.rows != 1 {
		t.Errorf("a failed answer changed rows to %d, want the last good answer's 1", c.rows)
	}
}
