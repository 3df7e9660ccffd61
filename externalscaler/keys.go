package externalscaler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/enforce"
	"github.com/ebbscale/ebb/shutdown"
)

// TriggerKey is one trigger metadata key: its row of the README's table and
// how it is parsed. triggerKeys, in parsing order, is the only place a key
// is declared: ParseTrigger, the unknown-key error and the README's table
// (see KeyTable) are derived from it, and a test fails when the README's
// table differs. A new key is one entry.
type TriggerKey struct {
	Name     string
	Required string // the README's "required" column: "yes", "no (default)", ...
	Meaning  string // the README's "meaning" column, Markdown
	// parse reads the key's value into p.t; present is false when the key
	// is absent (raw is then ""). Its error's text follows "metadata <key>: ".
	parse func(p *triggerParser, raw string, present bool) error
}

// triggerParser is ParseTrigger's state while it walks triggerKeys.
type triggerParser struct {
	md              map[string]string
	name, namespace string
	opts            ParseOptions
	t               Trigger
}

var triggerKeys = []TriggerKey{
	{"signal", "yes", "`requests`, `gpu`, `query`, or a model server's `queue`, `running`, `kvcache`, `ttft` (see [Model servers](#model-servers))",
		func(p *triggerParser, raw string, present bool) error {
			if !present {
				return fmt.Errorf("missing, want %s", queries.SignalNames())
			}
			sig, err := queries.ParseSignal(raw)
			p.t.Shape.Signal = sig
			return err
		}},
	{"target", "yes", "per-replica target, > 0: requests/s per replica; GPU utilization % per replica; the query's value per replica; requests waiting or running per replica; KV-cache usage % per replica; for `ttft` the latency goal in seconds (with `metricType: Value`)",
		func(p *triggerParser, raw string, present bool) error {
			if !present {
				return errors.New("missing, want a number > 0")
			}
			v, err := parseNumber(raw)
			if err != nil || v <= 0 {
				return fmt.Errorf("%q is not a number > 0", raw)
			}
			p.t.Target = v
			return nil
		}},
	{"activation", "no (0)", "the workload is active while its value is > this",
		func(p *triggerParser, raw string, present bool) error {
			if !present {
				return nil
			}
			v, err := parseNumber(raw)
			if err != nil || v < 0 {
				return fmt.Errorf("%q is not a number >= 0", raw)
			}
			p.t.Activation = v
			return nil
		}},
	{"workload", "no (the ScaledObject's name)", "the Deployment/StatefulSet the signal is about, in the ScaledObject's namespace",
		func(p *triggerParser, raw string, present bool) error {
			workload := p.name
			if present {
				workload = raw
			}
			if len(validation.IsDNS1123Subdomain(workload)) > 0 {
				return fmt.Errorf("%q is not a Kubernetes object name", workload)
			}
			p.t.Workload = queries.WorkloadKey{Namespace: p.namespace, Name: workload}
			return nil
		}},
	{"idleAfter", "no", "autoshutdown: stay active this long after the last activity; `auto`: learned from the workload's own activity, with pre-wake",
		func(p *triggerParser, raw string, present bool) error {
			if !present {
				return nil
			}
			if strings.EqualFold(raw, "auto") {
				p.t.IdleAfter = shutdown.AutoIdleAfter
				return nil
			}
			d, err := time.ParseDuration(raw)
			if err != nil || d <= 0 || d > shutdown.MaxIdleAfter {
				return fmt.Errorf("%q is not a duration in (0s, %s] such as 15m", raw, shutdown.FormatDuration(shutdown.MaxIdleAfter))
			}
			p.t.IdleAfter = d
			return nil
		}},
	{"window", "no (`1m`, `--default-window`); **yes** for `ttft`", "rate/averaging window of every signal but `query`, whole seconds in [10s, 1h]; not used with `query` (put the range in the query)",
		func(p *triggerParser, raw string, present bool) error {
			switch {
			case p.t.Shape.Signal == queries.SignalQuery:
				if present {
					return errors.New("not used with signal query: put the range in the query")
				}
				return nil
			case !present && p.t.Shape.Signal == queries.SignalTTFT:
				return errors.New("missing, signal ttft needs the window of its histogram's rate, such as 5m")
			case !present:
				p.t.Shape.Window = p.opts.DefaultWindow
				if p.t.Shape.Window == 0 {
					p.t.Shape.Window = time.Minute
				}
				return nil
			}
			d, err := time.ParseDuration(raw)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 1m", raw)
			}
			if d < MinWindow || d > MaxWindow || d%time.Second != 0 {
				return fmt.Errorf("%s, must be whole seconds in [%s, %s]", d, MinWindow, "1h")
			}
			p.t.Shape.Window = d
			return nil
		}},
	{"query", "with `signal: query`", "a PromQL/MetricsQL expression",
		func(p *triggerParser, raw string, present bool) error {
			switch {
			case p.t.Shape.Signal != queries.SignalQuery && present:
				return errors.New("only used with signal query")
			case p.t.Shape.Signal != queries.SignalQuery:
				return nil
			case !present:
				return errors.New("missing, signal query needs a PromQL expression")
			}
			enforced, err := enforce.Namespace(raw, p.namespace, p.opts.Enforce)
			if err != nil {
				return errors.New(strings.TrimPrefix(err.Error(), "query: "))
			}
			p.t.Shape.Expr = enforced
			return nil
		}},
	{"server", "no (`auto`)", "with a model-server signal: `auto`, `vllm`, `tgi`, `sglang` or `triton`, whose metric names are read; `auto` reads every kind's in one query",
		func(p *triggerParser, raw string, present bool) error {
			switch {
			case !p.t.Shape.Signal.ModelServer() && present:
				return errors.New("only used with signals queue, running, kvcache and ttft")
			case !p.t.Shape.Signal.ModelServer():
				return nil
			case !present:
				p.t.Shape.Server = queries.ServerAuto
				return nil
			}
			srv, err := queries.ParseServer(raw)
			if err != nil {
				return err
			}
			if _, err := queries.DefaultCatalog().Expr(queries.Shape{Signal: p.t.Shape.Signal, Server: srv, Window: time.Minute, Quantile: queries.DefaultQuantile}); err != nil {
				return fmt.Errorf("%s exposes no metric for signal %s", srv, p.t.Shape.Signal)
			}
			p.t.Shape.Server = srv
			return nil
		}},
	{"quantile", "no (`0.9`)", "with `signal: ttft`: the quantile of the time-to-first-token histogram, in (0, 1)",
		func(p *triggerParser, raw string, present bool) error {
			switch {
			case p.t.Shape.Signal != queries.SignalTTFT && present:
				return errors.New("only used with signal ttft")
			case p.t.Shape.Signal != queries.SignalTTFT:
				return nil
			case !present:
				p.t.Shape.Quantile = queries.DefaultQuantile
				return nil
			}
			q, err := parseNumber(raw)
			if err != nil || q <= 0 || q >= 1 {
				return fmt.Errorf("%q is not a number in (0, 1) such as 0.9", raw)
			}
			p.t.Shape.Quantile = q
			return nil
		}},
}

// keyIndex finds a key's entry; knownKeys are the names, sorted, for the
// unknown-key error.
var (
	keyIndex  = map[string]int{}
	knownKeys []string
)

func init() {
	for i, k := range triggerKeys {
		keyIndex[k.Name] = i
		knownKeys = append(knownKeys, k.Name)
	}
	sort.Strings(knownKeys)
}

// TriggerKeys returns the trigger metadata keys ebb reads, in parsing order.
func TriggerKeys() []TriggerKey {
	out := make([]TriggerKey, len(triggerKeys))
	copy(out, triggerKeys)
	return out
}

// KeyTable renders the README's table of trigger metadata keys: KEDA's
// scalerAddress, then every key of TriggerKeys.
func KeyTable() string {
	var b strings.Builder
	b.WriteString("| key | required | meaning |\n| --- | --- | --- |\n")
	b.WriteString("| `scalerAddress` | yes | KEDA's own key: ebb's gRPC address |\n")
	for _, k := range triggerKeys {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Name, k.Required, k.Meaning)
	}
	return b.String()
}
