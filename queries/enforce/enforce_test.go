package enforce

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
)

const enforceNS = "team-a"

// assertPinned parses out and checks, independently of enforce.go, that every
// selector's every or-branch has exactly one filter on label, namespace="ns",
// and that the tree holds only node kinds whose reads are all selectors.
func assertPinned(t testing.TB, out, label, ns string) {
	t.Helper()
	e, err := metricsql.Parse(out)
	if err != nil {
		t.Fatalf("output %q does not parse: %v", out, err)
	}
	want := metricsql.LabelFilter{Label: label, Value: ns}
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		switch x := x.(type) {
		case *metricsql.MetricExpr:
			if len(x.LabelFilterss) == 0 {
				t.Errorf("output %q: selector %s has no filters", out, x.AppendString(nil))
			}
			for _, branch := range x.LabelFilterss {
				var got []metricsql.LabelFilter
				for _, f := range branch {
					if f.Label == label {
						got = append(got, f)
					}
				}
				if len(got) != 1 || got[0] != want {
					t.Errorf("output %q: selector %s: filters on %s = %+v, want exactly %+v", out, x.AppendString(nil), label, got, want)
				}
			}
		case *metricsql.FuncExpr, *metricsql.AggrFuncExpr, *metricsql.BinaryOpExpr, *metricsql.RollupExpr,
			*metricsql.NumberExpr, *metricsql.StringExpr, *metricsql.DurationExpr, *metricsql.ModifierExpr:
		default:
			t.Errorf("output %q: unexpected node %T", out, x)
		}
	})
}

// enforceChecked runs Namespace and checks pinning and idempotence.
func enforceChecked(t testing.TB, q string, opts Options) string {
	t.Helper()
	out, err := Namespace(q, enforceNS, opts)
	if err != nil {
		t.Fatalf("Namespace(%q): %v", q, err)
	}
	assertPinned(t, out, cmp.Or(opts.NamespaceLabel, "namespace"), enforceNS)
	again, err := Namespace(out, enforceNS, opts)
	if err != nil {
		t.Fatalf("Namespace(Namespace(%q)) = Namespace(%q): %v", q, out, err)
	}
	if again != out {
		t.Errorf("not idempotent for %q:\nonce:  %s\ntwice: %s", q, out, again)
	}
	return out
}

// enforceOrdinaryQueries have outputs checked by eye and, in TestEnforcePromtool,
// by Prometheus' own parser.
var enforceOrdinaryQueries = []struct{ in, want string }{
	{`sum(rate(http_requests_total{job="x"}[1m]))`,
		`sum(rate(http_requests_total{job="x",namespace="team-a"}[1m]))`},
	{`histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))`,
		`histogram_quantile(0.9, sum(rate(x_bucket{namespace="team-a"}[5m])) by(le))`},
	{`sum by (pod) (rate(container_cpu_usage_seconds_total{container!=""}[5m])) / on(pod) group_left sum by (pod) (kube_pod_container_resource_requests{resource="cpu"})`,
		`sum(rate(container_cpu_usage_seconds_total{container!="",namespace="team-a"}[5m])) by(pod) / on(pod) group_left() sum(kube_pod_container_resource_requests{namespace="team-a",resource="cpu"}) by(pod)`},
	{`avg_over_time(DCGM_FI_DEV_GPU_UTIL{namespace="other"}[5m]) > bool 50`,
		`avg_over_time(DCGM_FI_DEV_GPU_UTIL{namespace="team-a"}[5m]) >bool 50`},
	{`max_over_time(rate(x[1m])[1h:5m] offset 1h)`,
		`max_over_time(rate(x{namespace="team-a"}[1m])[1h:5m] offset 1h)`},
	{`sum(rate(istio_requests_total{destination_workload="web", reporter='destination'}[1m])) or vector(0)`,
		`sum(rate(istio_requests_total{destination_workload="web",namespace="team-a",reporter="destination"}[1m])) or vector(0)`},
	{`-x`, `0 - x{namespace="team-a"}`},
	{`1e3 * x unless y`, `(1000 * x{namespace="team-a"}) unless y{namespace="team-a"}`},
	{`x @ end()`, `x{namespace="team-a"} @ end()`},
	{`x{a="b"} offset -5m @ 100`, `x{a="b",namespace="team-a"} offset -5m @ 100`},
	{`topk(3, sum by (b, a) (x))`, `topk(3, sum(x{namespace="team-a"}) by(a,b))`},
	{`absent(up{job="api"})`, `absent(up{job="api",namespace="team-a"})`},
	{`{__name__=~"http_.+"}`, `{__name__=~"http_.+",namespace="team-a"}`},
	{`(-5) ^ x`, `(-5) ^ x{namespace="team-a"}`},
	{`time() - timestamp(x)`, `time() - timestamp(x{namespace="team-a"})`},
}

func TestEnforceOrdinary(t *testing.T) {
	t.Parallel()
	for _, tt := range enforceOrdinaryQueries {
		t.Run(tt.in, func(t *testing.T) {
			if got := enforceChecked(t, tt.in, Options{}); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEnforcePromtool checks that the ordinary outputs are PromQL as
// Prometheus parses it, with promtool's offline rule check.
func TestEnforcePromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (make test-deps)")
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, tt := range enforceOrdinaryQueries {
		rules = append(rules, rule{Record: fmt.Sprintf("enforce:q%d", i), Expr: tt.want})
	}
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "enforce", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.json") // JSON is YAML
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// enforceAdversarialQueries try to read other namespaces, or to trip the parser,
// the printer or the pinning. Each must come out pinned and idempotent.
func enforceAdversarialQueries() []string {
	deep := strings.Repeat("abs(", 300) + `x{namespace="b"}` + strings.Repeat(")", 300)
	parens := strings.Repeat("(", 1000) + `{namespace!="x"}` + strings.Repeat(")", 1000)
	var long strings.Builder
	long.WriteString(`a{namespace="team-a"}`)
	for long.Len() < 3500 { // the output adds parentheses
		long.WriteString(` + a{namespace="team-a"}`)
	}
	return []string{
		// selectors that try to read other namespaces
		`{__name__=~".+"}`,
		`{__name__=~".+", namespace!="team-a"}`,
		`x{namespace!="x"}`,
		`x{namespace=~".*"}`,
		`{namespace=~"a|b"}`,
		`{namespace="kube-system"}`,
		`{namespace=""}`,
		`x{namespace="team-a",namespace="b",namespace!~"team-a"}`,
		`{job="x"}`,
		`{}`,
		`x{}`,
		// metricsql's or-filters: every branch
		`{a="b" or c="d"}`,
		`x{namespace="a" or namespace="b"}`,
		`{__name__="x", namespace="a" or namespace="b"}`,
		`x{job="a",namespace="a" or job="b" or namespace=~".+"}`,
		`{__name__="x",namespace="a" or __name__=~"y.*"}`,
		// label tricks
		`label_replace(x{namespace="b"}, "namespace", "team-b", "", "")`,
		`label_set(x, "namespace", "kube-system")`,
		`count_values("namespace", x{namespace="b"})`,
		`sum(x) by (namespace)`,
		`x{Namespace="b", NAMESPACE="c", namespace_="d"}`,
		`x{"namespace"="b"}`,
		`x{\x6eamespace="b"}`,
		`x{names\pace="b"}`,
		`{"x", namespace="b"}`,
		`{__graphite__="foo.*.bar"}`,
		`x{a=~"(?i)namespace"}`,
		// constants
		`x or vector(1)`,
		`vector(1) or on() x{namespace="kube-system"}`,
		`vector(1)`, `time()`, `1`, `"str"`, `1h`, `NaN`, `-Inf`, `pi() * 2`,
		// functions, aggregations, nesting
		`abs(ceil(floor(rate(x{namespace="b"}[5m]))))`,
		`absent(x{namespace="b"})`,
		`absent_over_time(x{namespace="b"}[5m])`,
		`scalar(x{namespace="b"})`,
		`histogram_quantile(0.9, sum by (le, namespace) (rate(x_bucket{namespace=~".+"}[5m])))`,
		`quantiles_over_time("phi", 0.5, 0.9, x{namespace="b"}[5m])`,
		`limit_offset(1, 1, sort_by_label(x, "namespace"))`,
		`sum(x) by (a) limit 5`,
		`topk(1, x{namespace="b"}) by (namespace)`,
		`alias(x{namespace="b"}, "y")`,
		`range_median(x{namespace="b"})`,
		`(x{namespace="b"}, y)`,
		`union(x{namespace="b"}, y)`,
		`abs(x{namespace="b"}) keep_metric_names`,
		`RATE(x{namespace="b"}[5m])`,
		// subqueries, rollups, modifiers
		`rate(x[5m:1m])`,
		`max_over_time(rate(x{namespace="b"}[1m])[1h:5m])`,
		`x[5m:]`,
		`rate(x[$__interval])`,
		`rate(x[5m] offset -1h)`,
		`x @ 1700000000`,
		`x @ y{namespace="b"}`,
		`rate(x[5m] @ (y{namespace="b"} + 1))`,
		`x{namespace="b"} offset 1h @ start()`,
		// binary operators, both sides
		`a{namespace="b"} / on(pod) group_left(node) b{namespace="c"}`,
		`a and b{namespace="c"}`, `a unless b{namespace="c"}`, `a{namespace="c"} or b`,
		`a > bool 1`, `a if b{namespace="c"}`, `a default b{namespace="c"}`, `a ifnot b{namespace="c"}`,
		`a + fill(0) b{namespace="c"}`,
		`a * on(namespace) group_left() b{namespace="b"}`,
		`a / ignoring(namespace) group_right(x) prefix "p_" b{namespace="b"}`,
		`-5 ^ x`, `(-5) ^ x`, `(0 * -1) ^ x`, `-x{namespace="b"}`, `+x`, `2 ^ -x`,
		`(-1) @ 0`, `0 @ (x{namespace="b"}[1m])`, `0 @ (0[$__interval])`, `(-1)[5m:] offset 1m`,
		// encodings, sizes
		`записи{метка="значение", namespace="b"}`,
		`x{a="日本", b="\x00\u2028"}`,
		"x # comment\n + y{namespace=\"b\"}",
		`x{a='b',} + x{a="b"}`,
		deep, parens, long.String(),
	}
}

func TestEnforceAdversarial(t *testing.T) {
	t.Parallel()
	for _, q := range enforceAdversarialQueries() {
		name := q
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			out := enforceChecked(t, q, Options{})
			if strings.Contains(out, `namespace="b"`) || strings.Contains(out, "kube-system\"}") {
				t.Errorf("output %q still names another namespace in a selector", out)
			}
		})
	}
}

func TestEnforceNamespaceLabel(t *testing.T) {
	t.Parallel()
	opts := Options{NamespaceLabel: "exported_namespace"}
	got := enforceChecked(t, `x{namespace="b",exported_namespace=~".+"}`, opts)
	if want := `x{exported_namespace="team-a",namespace="b"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestEnforceCanonical(t *testing.T) {
	t.Parallel()
	f := func(a, b string) {
		t.Helper()
		ea, eb := enforceChecked(t, a, Options{}), enforceChecked(t, b, Options{})
		if ea != eb {
			t.Errorf("%q and %q differ:\n%s\n%s", a, b, ea, eb)
		}
	}
	f(`sum(rate(x{job="a",namespace="b"}[1m]))`, ` SUM ( RATE( x{namespace="other",job="a"}[1m] ) ) `)
	f(`x{b="1",a="2"}`, `x{a="2",b="1",a="2"}`)
	f(`x`, `x{namespace="team-a"}`)
	f(`x`, `{__name__="x"}`)
	f(`x`, `(x)`)
	f("x # a comment", `x`)
	f(`x{a='b'}`, `x{a="b"}`)
	f(`sum by (b, a) (x)`, `sum(x) by (a,b,a)`)
	f(`a / on(y, x) b`, `a / on(x, y) b`)
	f(`x{a="1" or b="2"}`, `x{b="2" or a="1" or a="1"}`)
	f(`1e3 * x`, `1000 * x`)
	f(`0x10 + x`, `16 + x`)
	f(`x > 1k`, `x > 1000`)
	f(`rate(x[$__interval])`, `rate(x)`)
}

func TestEnforceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, ns string
		opts     Options
		reason   Reason
		msg      string
	}{
		{"", "a", Options{}, ReasonEmpty, "query: empty expression"},
		{" \n\t", "a", Options{}, ReasonEmpty, "query: empty expression"},
		{strings.Repeat("x", 4097), "a", Options{}, ReasonTooLong, "query: expression is 4097 bytes, max 4096"},
		{"x + y_long", "a", Options{MaxLength: 8}, ReasonTooLong, "query: expression is 10 bytes, max 8"},
		{"x", "a", Options{MaxLength: 10}, ReasonTooLong, "query: enforced expression is 16 bytes, max 10"},
		{"x", "", Options{}, ReasonNamespace, "query: empty namespace"},
		{"x", "Team", Options{}, ReasonNamespace, `query: namespace "Team" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", "a_b", Options{}, ReasonNamespace, `query: namespace "a_b" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", "-a", Options{}, ReasonNamespace, `query: namespace "-a" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", "a-", Options{}, ReasonNamespace, `query: namespace "a-" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", "a.b", Options{}, ReasonNamespace, `query: namespace "a.b" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", `a"}`, Options{}, ReasonNamespace, `query: namespace "a\"}" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", strings.Repeat("a", 64), Options{}, ReasonNamespace, `query: namespace "` + strings.Repeat("a", 64) + `" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)`},
		{"x", "a", Options{NamespaceLabel: "__name__"}, ReasonOptions, `query: namespace label "__name__" is not a label name`},
		{"x", "a", Options{NamespaceLabel: "name-space"}, ReasonOptions, `query: namespace label "name-space" is not a label name`},
		{"x", "a", Options{MaxLength: -1}, ReasonOptions, "query: max length -1, must be positive"},
		{"sum(x", "a", Options{}, ReasonParse, `query: cannot parse: argList: unexpected token ""; want ",", ")"; unparsed data: ""`},
		{"x{", "a", Options{}, ReasonParse, `query: cannot parse: labelFilterExpr: unexpected token ""; want "ident"; unparsed data: ""`},
		{"x)", "a", Options{}, ReasonParse, `query: cannot parse: unparsed data left: ")"`},
		{"foo(x)", "a", Options{}, ReasonParse, `query: cannot parse: unsupported function "foo"`},
		{`x{a=~"("}`, "a", Options{}, ReasonParse, "query: cannot parse: cannot expand WITH expressions: invalid regexp in a=\"(\": error parsing regexp: missing closing ): `^(?:()$`"},
		{"# only a comment", "a", Options{}, ReasonParse, `query: cannot parse: singleExpr: unexpected token ""; want "(", "{", "-", "+"; unparsed data: "# only a comment"`},
		{"WITH (a = x) a", "a", Options{}, ReasonUnsupported, "query: WITH templates are not supported"},
		{"with(a = x{namespace=\"b\"}) a", "a", Options{}, ReasonUnsupported, "query: WITH templates are not supported"},
		{"ru(x, y)", "a", Options{}, ReasonUnsupported, "query: ru() is not supported"},
		{`r\u0075(x, y)`, "a", Options{}, ReasonUnsupported, `query: r\u0075() is not supported`},
		{`r\ate(x[5m])`, "a", Options{}, ReasonUnsupported, `query: r\ate() is not supported`},
		{"{\"\xf2\"}", "a", Options{}, ReasonUnsupported, `query: name "\xf2" is not valid UTF-8 or not printable`},
		{`x{"\u082e"="a"}`, "a", Options{}, ReasonUnsupported, `query: name "\u082e" is not valid UTF-8 or not printable`},
		{`x{""="a"}`, "a", Options{}, ReasonUnsupported, "query: empty label name"},
		{`x{vm_account_id="7"}`, "a", Options{}, ReasonUnsupported, `query: label "vm_account_id" selects a VictoriaMetrics tenant and is not allowed`},
		{`x or y{a="b" or vm_project_id=~".*"}`, "a", Options{}, ReasonUnsupported, `query: label "vm_project_id" selects a VictoriaMetrics tenant and is not allowed`},
		{`sum(x) by (a\u082e)`, "a", Options{}, ReasonUnsupported, `query: name "a\u082e" is not valid UTF-8 or not printable`},
		{"ttf(x)", "a", Options{}, ReasonUnsupported, "query: ttf() is not supported"},
	}
	for _, tt := range tests {
		name := tt.expr
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			out, err := Namespace(tt.expr, tt.ns, tt.opts)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("Namespace(%q) = %q, %v; want *Error", tt.expr, out, err)
			}
			if out != "" {
				t.Errorf("output = %q, want empty", out)
			}
			if ee.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", ee.Reason, tt.reason)
			}
			if err.Error() != tt.msg {
				t.Errorf("message:\ngot  %s\nwant %s", err, tt.msg)
			}
		})
	}
}

// TestEnforceExpansionBomb checks that queries metricsql would expand
// exponentially are refused before they are parsed.
func TestEnforceExpansionBomb(t *testing.T) {
	t.Parallel()
	chain := "WITH (a0 = x"
	for i := 1; i <= 60; i++ {
		chain += fmt.Sprintf(", a%d = a%d + a%d", i, i-1, i-1)
	}
	chain += ") a60"
	bombs := []string{
		chain,
		strings.Repeat("ttf(", 40) + "x" + strings.Repeat(")", 40),
		strings.Repeat("ru(x, ", 40) + "x" + strings.Repeat(")", 40),
	}
	for _, q := range bombs {
		_, err := Namespace(q, enforceNS, Options{})
		var ee *Error
		if !errors.As(err, &ee) || ee.Reason != ReasonUnsupported {
			t.Errorf("Namespace(%.40q...) = %v, want reason %q", q, err, ReasonUnsupported)
		}
	}
}

func TestEnforceFindExpandingTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`x`, ""},
		{`WITH (a = x) a`, "WITH"},
		{`wItH(a = x) a`, "wItH"},
		{"with # comment\n (a = x) a", "with"},
		{`\x57ITH (a = x) a`, `\x57ITH`},
		{`ru(x, y)`, "ru"},
		{`r\u0075(x, y)`, `r\u0075`},
		{`r\U0075 (x, y)`, `r\U0075`},
		{`1ru(x)`, "1ru"},
		{`sum(ttf (x))`, "ttf"},
		{`r\ate(x[5m])`, `r\ate`},
		{`x{a="with (" , b='ru(' , c=` + "`ttf(`" + `}`, ""},
		{`x{a="\"with ("}`, ""},
		{`x{a="\\"} + ru(x, y)`, "ru"},
		{"x # with (a = x)\n", ""},
		{"x # with (a = x)", ""},
		{`with_x(y)`, ""},
		{`guru_x(y)`, ""},
		{`sum(x) without (a)`, ""},
		{`x{with="a"}`, ""},
		{`ru`, ""},
		{`"unterminated with (`, ""},
		{`x + \`, ""},
	}
	for _, tt := range tests {
		if got := findExpandingTemplate(tt.in); got != tt.want {
			t.Errorf("findExpandingTemplate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func ExampleNamespace() {
	q, err := Namespace(`sum(rate(http_requests_total{job="web", namespace=~".*"}[1m])) or vector(0)`, "shop", Options{})
	fmt.Println(q, err)

	_, err = Namespace(`sum(rate(x[1m]`, "shop", Options{})
	var ee *Error
	fmt.Println(errors.As(err, &ee), ee.Reason)
	// Output:
	// sum(rate(http_requests_total{job="web",namespace="shop"}[1m])) or vector(0) <nil>
	// true parse
}
