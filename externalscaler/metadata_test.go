package externalscaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

func TestParseTrigger(t *testing.T) {
	tests := []struct {
		name string
		md   map[string]string
		want Trigger
	}{
		{"requests with defaults", map[string]string{"scalerAddress": "ebb:9090", "signal": "requests", "target": "10"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, Target: 10}},
		{"gpu with everything", map[string]string{"signal": "gpu", "target": "70", "activation": "5", "window": "2m", "workload": "llm", "idleAfter": "30m", "enableTLS": "true", "unsafeSsl": "false"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "llm"}, Shape: queries.Shape{Signal: queries.SignalGPU, Window: 2 * time.Minute}, Target: 70, Activation: 5, IdleAfter: 30 * time.Minute}},
		{"query is namespaced", map[string]string{"signal": "query", "target": "0.5", "query": `sum(rate(http_requests_total{job="cart"}[1m]))`},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalQuery, Expr: `sum(rate(http_requests_total{job="cart",namespace="shop"}[1m]))`}, Target: 0.5}},
		{"fractional target and spaces", map[string]string{"signal": "requests", "target": " 2.5 "},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, Target: 2.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrigger("cart", "shop", tt.md, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// badMetadata is shared with the end-to-end tests: each case must be
// answered InvalidArgument with exactly this message.
var badMetadata = []struct {
	name string
	md   map[string]string
	want string
}{
	{"missing signal", map[string]string{"target": "1"}, "metadata signal: missing, want requests, gpu or query"},
	{"unknown signal", map[string]string{"signal": "cpu", "target": "1"}, `metadata signal: unknown signal "cpu", want requests, gpu or query`},
	{"missing target", map[string]string{"signal": "requests"}, "metadata target: missing, want a number > 0"},
	{"target abc", map[string]string{"signal": "requests", "target": "abc"}, `metadata target: "abc" is not a number > 0`},
	{"target -1", map[string]string{"signal": "requests", "target": "-1"}, `metadata target: "-1" is not a number > 0`},
	{"target 0", map[string]string{"signal": "requests", "target": "0"}, `metadata target: "0" is not a number > 0`},
	{"target NaN", map[string]string{"signal": "requests", "target": "NaN"}, `metadata target: "NaN" is not a number > 0`},
	{"target Inf", map[string]string{"signal": "requests", "target": "+Inf"}, `metadata target: "+Inf" is not a number > 0`},
	{"activation negative", map[string]string{"signal": "requests", "target": "1", "activation": "-0.1"}, `metadata activation: "-0.1" is not a number >= 0`},
	{"window 5parsecs", map[string]string{"signal": "requests", "target": "1", "window": "5parsecs"}, `metadata window: "5parsecs" is not a duration such as 1m`},
	{"window too short", map[string]string{"signal": "gpu", "target": "1", "window": "1s"}, "metadata window: 1s, must be whole seconds in [10s, 1h]"},
	{"window too long", map[string]string{"signal": "gpu", "target": "1", "window": "2h"}, "metadata window: 2h0m0s, must be whole seconds in [10s, 1h]"},
	{"window fractional", map[string]string{"signal": "gpu", "target": "1", "window": "30.5s"}, "metadata window: 30.5s, must be whole seconds in [10s, 1h]"},
	{"unknown key", map[string]string{"signal": "requests", "target": "1", "treshold": "5"}, "metadata treshold: unknown key (known: activation, idleAfter, query, signal, target, window, workload); unknown keys: treshold"},
	{"query missing", map[string]string{"signal": "query", "target": "1"}, "metadata query: missing, signal query needs a PromQL expression"},
	{"query with window", map[string]string{"signal": "query", "target": "1", "query": "up", "window": "1m"}, "metadata window: not used with signal query: put the range in the query"},
	{"query on requests", map[string]string{"signal": "requests", "target": "1", "query": "up"}, "metadata query: only used with signal query"},
	{"bad workload", map[string]string{"signal": "requests", "target": "1", "workload": "Not_A_Name"}, `metadata workload: "Not_A_Name" is not a Kubernetes object name`},
	{"idleAfter bad", map[string]string{"signal": "requests", "target": "1", "idleAfter": "soon"}, `metadata idleAfter: "soon" is not a duration in (0s, 720h] such as 15m`},
	{"idleAfter too long", map[string]string{"signal": "requests", "target": "1", "idleAfter": "1000h"}, `metadata idleAfter: "1000h" is not a duration in (0s, 720h] such as 15m`},
}

func TestParseTriggerErrors(t *testing.T) {
	for _, tt := range badMetadata {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrigger("cart", "shop", tt.md, ParseOptions{})
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a *MetadataError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestParseTriggerBadQuery(t *testing.T) {
	_, err := ParseTrigger("cart", "shop", map[string]string{"signal": "query", "target": "1", "query": "sum(rate(x[1m])"}, ParseOptions{})
	var me *MetadataError
	if !errors.As(err, &me) || me.Key != "query" {
		t.Fatalf("got %v, want a *MetadataError on key query", err)
	}
	// The parser's position reaches the user.
	if !strings.HasPrefix(err.Error(), "metadata query: ") || !strings.Contains(err.Error(), "cannot parse") {
		t.Errorf("error %q does not show the query and the parser's complaint", err)
	}
}

func TestParseTriggerBadRef(t *testing.T) {
	md := map[string]string{"signal": "requests", "target": "1"}
	for _, tt := range []struct{ name, ns, want string }{
		{"", "shop", "scaledObjectRef name is empty"},
		{"cart", "", `scaledObjectRef namespace "" is not a Kubernetes namespace name`},
		{"cart", "Shop!", `scaledObjectRef namespace "Shop!" is not a Kubernetes namespace name`},
	} {
		_, err := ParseTrigger(tt.name, tt.ns, md, ParseOptions{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseTrigger(%q, %q): got %v, want %q", tt.name, tt.ns, err, tt.want)
		}
	}
}

func FuzzParseTrigger(f *testing.F) {
	f.Add("cart", "shop", "requests", "10", "0", "1m", "", "")
	f.Add("cart", "shop", "gpu", "70", "5", "30s", "", "15m")
	f.Add("cart", "shop", "query", "1", "", "", `sum(rate(x{namespace!="shop"}[1m])) or vector(1)`, "")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("a", "b", "requests", "1e309", "-0", "9223372036s", "", "-1s")
	f.Add("a", "b", "query", "0x10", "NaN", "", `{__name__=~".+"}`, "")
	f.Fuzz(func(t *testing.T, name, ns, signal, target, activation, window, query, idle string) {
		md := map[string]string{"signal": signal, "target": target}
		for k, v := range map[string]string{"activation": activation, "window": window, "query": query, "idleAfter": idle} {
			if v != "" {
				md[k] = v
			}
		}
		tr, err := ParseTrigger(name, ns, md, ParseOptions{})
		if err != nil {
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MetadataError", err)
			}
			return
		}
		if !(tr.Target > 0) || tr.Activation < 0 || tr.Workload.Namespace != ns {
			t.Fatalf("accepted an invalid trigger %+v", tr)
		}
		switch tr.Shape.Signal {
		case queries.SignalQuery:
			if tr.Shape.Expr == "" || tr.Shape.Window != 0 {
				t.Fatalf("query trigger with shape %+v", tr.Shape)
			}
		case queries.SignalRequests, queries.SignalGPU:
			if tr.Shape.Window < MinWindow || tr.Shape.Window > MaxWindow || tr.Shape.Expr != "" {
				t.Fatalf("%s trigger with shape %+v", tr.Shape.Signal, tr.Shape)
			}
		default:
			t.Fatalf("accepted signal %q", tr.Shape.Signal)
		}
	})
}
