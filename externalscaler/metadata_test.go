package externalscaler

import (
	"errors"
	"os"
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
		{"queue, server auto by default", map[string]string{"signal": "queue", "target": "8", "workload": "vllm-llama"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "vllm-llama"}, Shape: queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: time.Minute}, Target: 8}},
		{"running on tgi", map[string]string{"signal": "running", "target": "16", "server": "tgi", "activation": "0"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalRunning, Server: queries.ServerTGI, Window: time.Minute}, Target: 16}},
		{"kvcache on sglang", map[string]string{"signal": "kvcache", "target": "70", "server": "sglang", "window": "30s"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalKVCache, Server: queries.ServerSGLang, Window: 30 * time.Second}, Target: 70}},
		{"ttft, quantile 0.9 by default", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalTTFT, Server: queries.ServerAuto, Window: 5 * time.Minute, Quantile: 0.9}, Target: 0.5}},
		{"ttft p99 on triton", map[string]string{"signal": "ttft", "target": "2", "window": "2m", "quantile": "0.99", "server": "triton"},
			Trigger{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Shape: queries.Shape{Signal: queries.SignalTTFT, Server: queries.ServerTriton, Window: 2 * time.Minute, Quantile: 0.99}, Target: 2}},
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
	{"missing signal", map[string]string{"target": "1"}, "metadata signal: missing, want requests, gpu, query, queue, running, kvcache or ttft"},
	{"unknown signal", map[string]string{"signal": "cpu", "target": "1"}, `metadata signal: unknown signal "cpu", want requests, gpu, query, queue, running, kvcache or ttft`},
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
	{"unknown key", map[string]string{"signal": "requests", "target": "1", "treshold": "5"}, "metadata treshold: unknown key (known: activation, idleAfter, quantile, query, server, signal, target, window, workload); unknown keys: treshold"},
	{"query missing", map[string]string{"signal": "query", "target": "1"}, "metadata query: missing, signal query needs a PromQL expression"},
	{"query with window", map[string]string{"signal": "query", "target": "1", "query": "up", "window": "1m"}, "metadata window: not used with signal query: put the range in the query"},
	{"query on requests", map[string]string{"signal": "requests", "target": "1", "query": "up"}, "metadata query: only used with signal query"},
	{"bad workload", map[string]string{"signal": "requests", "target": "1", "workload": "Not_A_Name"}, `metadata workload: "Not_A_Name" is not a Kubernetes object name`},
	{"idleAfter bad", map[string]string{"signal": "requests", "target": "1", "idleAfter": "soon"}, `metadata idleAfter: "soon" is not a duration in (0s, 720h] such as 15m`},
	{"idleAfter too long", map[string]string{"signal": "requests", "target": "1", "idleAfter": "1000h"}, `metadata idleAfter: "1000h" is not a duration in (0s, 720h] such as 15m`},
	{"unknown server", map[string]string{"signal": "queue", "target": "1", "server": "ollama"}, `metadata server: unknown server "ollama", want auto, vllm, tgi, sglang or triton`},
	{"server in upper case", map[string]string{"signal": "queue", "target": "1", "server": "vLLM"}, `metadata server: unknown server "vLLM", want auto, vllm, tgi, sglang or triton`},
	{"server without the signal", map[string]string{"signal": "kvcache", "target": "70", "server": "tgi"}, "metadata server: tgi exposes no metric for signal kvcache"},
	{"ttft from tgi", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "server": "tgi"}, "metadata server: tgi exposes no metric for signal ttft"},
	{"server on requests", map[string]string{"signal": "requests", "target": "1", "server": "vllm"}, "metadata server: only used with signals queue, running, kvcache and ttft"},
	{"ttft without window", map[string]string{"signal": "ttft", "target": "0.5"}, "metadata window: missing, signal ttft needs the window of its histogram's rate, such as 5m"},
	{"quantile 0", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "0"}, `metadata quantile: "0" is not a number in (0, 1) such as 0.9`},
	{"quantile 1", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "1"}, `metadata quantile: "1" is not a number in (0, 1) such as 0.9`},
	{"quantile 90", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "90"}, `metadata quantile: "90" is not a number in (0, 1) such as 0.9`},
	{"quantile negative", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "-0.5"}, `metadata quantile: "-0.5" is not a number in (0, 1) such as 0.9`},
	{"quantile NaN", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "NaN"}, `metadata quantile: "NaN" is not a number in (0, 1) such as 0.9`},
	{"quantile on queue", map[string]string{"signal": "queue", "target": "1", "quantile": "0.9"}, "metadata quantile: only used with signal ttft"},
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
	f.Add("cart", "shop", "requests", "10", "0", "1m", "", "", "", "")
	f.Add("cart", "shop", "gpu", "70", "5", "30s", "", "15m", "", "")
	f.Add("cart", "shop", "query", "1", "", "", `sum(rate(x{namespace!="shop"}[1m])) or vector(1)`, "", "", "")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Add("a", "b", "requests", "1e309", "-0", "9223372036s", "", "-1s", "", "")
	f.Add("a", "b", "query", "0x10", "NaN", "", `{__name__=~".+"}`, "", "", "")
	f.Add("vllm-llama", "ml", "queue", "8", "0", "", "", "", "auto", "")
	f.Add("tgi-mistral", "ml", "running", "16", "", "30s", "", "", "tgi", "")
	f.Add("llm", "ml", "kvcache", "70", "", "", "", "", "tgi", "")
	f.Add("llm", "ml", "ttft", "0.5", "", "5m", "", "", "sglang", "0.95")
	f.Add("llm", "ml", "ttft", "0.5", "", "", "", "", "", "0.9")
	f.Add("llm", "ml", "ttft", "0.5", "", "5m", "", "", "VLLM", "1")
	f.Add("llm", "ml", "ttft", "0.5", "", "5m", "", "", "triton", "1e-320")
	f.Add("llm", "ml", "requests", "1", "", "", "", "", "vllm", "0.5")
	f.Fuzz(func(t *testing.T, name, ns, signal, target, activation, window, query, idle, server, quantile string) {
		md := map[string]string{"signal": signal, "target": target}
		for k, v := range map[string]string{"activation": activation, "window": window, "query": query, "idleAfter": idle, "server": server, "quantile": quantile} {
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
		switch sig := tr.Shape.Signal; {
		case sig == queries.SignalQuery:
			if tr.Shape.Expr == "" || tr.Shape.Window != 0 || tr.Shape.Server != "" {
				t.Fatalf("query trigger with shape %+v", tr.Shape)
			}
		case sig == queries.SignalRequests, sig == queries.SignalGPU, sig.ModelServer():
			if tr.Shape.Window < MinWindow || tr.Shape.Window > MaxWindow || tr.Shape.Expr != "" {
				t.Fatalf("%s trigger with shape %+v", sig, tr.Shape)
			}
			if (tr.Shape.Server != "") != sig.ModelServer() || (tr.Shape.Quantile != 0) != (sig == queries.SignalTTFT) {
				t.Fatalf("%s trigger with shape %+v", sig, tr.Shape)
			}
			if sig.ModelServer() {
				// Every accepted model-server shape has a query.
				if _, err := queries.DefaultCatalog().Expr(tr.Shape); err != nil {
					t.Fatalf("accepted shape %+v has no query: %v", tr.Shape, err)
				}
			}
		default:
			t.Fatalf("accepted signal %q", tr.Shape.Signal)
		}
	})
}

// TestKeyTableInREADME fails when the README's table of trigger metadata
// keys differs from the table ParseTrigger reads the keys from.
func TestKeyTableInREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "### Trigger metadata\n\n"
	_, rest, ok := strings.Cut(string(readme), heading)
	if !ok {
		t.Fatalf("README.md has no %q section", strings.TrimSpace(heading))
	}
	got, _, _ := strings.Cut(rest, "\n\n")
	if want := strings.TrimSuffix(KeyTable(), "\n"); got != want {
		t.Errorf("README.md's trigger metadata table differs from externalscaler's key table; put this in README.md:\n%s", want)
	}
}
