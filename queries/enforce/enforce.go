// Package enforce confines a user's PromQL/MetricsQL expression to one
// Kubernetes namespace: every selector pinned to it, checked, canonical.
package enforce

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of Options.
const (
	DefaultNamespaceLabel = "namespace"
	DefaultMaxLength      = 4096
)

// Options configures Namespace. The zero value is ready to use.
type Options struct {
	// NamespaceLabel is the label that holds a series' Kubernetes namespace;
	// DefaultNamespaceLabel when empty.
	NamespaceLabel string
	// MaxLength is the longest expression accepted, in bytes;
	// DefaultMaxLength when zero.
	MaxLength int
}

// Reason classifies why Namespace rejected a query.
type Reason string

// The reasons Namespace gives.
const (
	ReasonEmpty       Reason = "empty"       // the expression is blank
	ReasonTooLong     Reason = "too_long"    // the expression is longer than MaxLength
	ReasonNamespace   Reason = "namespace"   // the namespace is not a DNS-1123 label
	ReasonParse       Reason = "parse"       // metricsql cannot parse the expression
	ReasonUnsupported Reason = "unsupported" // valid, but not provably namespaced or cheap
	ReasonOptions     Reason = "options"     // the Options are invalid
	ReasonUnverified  Reason = "unverified"  // the result failed the final check: a bug
)

// Error reports an expression that Namespace rejected.
type Error struct {
	Reason Reason
	// Err is the detail; for ReasonParse, metricsql's error with its position.
	Err error
}

func (e *Error) Error() string {
	if e.Reason == ReasonParse {
		return "query: cannot parse: " + e.Err.Error()
	}
	return "query: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func newError(reason Reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Namespace parses expr with metricsql, forces every metric selector into
// namespace, and returns the canonical text sent to the store.
//
// In every selector, and in every or-branch of a selector's filters, all
// filters on the namespace label are dropped and one namespace="<namespace>"
// is added, wherever the selector sits (functions, aggregations, both sides
// of binary operators, subqueries, offset and @ modifiers). Label names are
// case-sensitive, so a filter on "Namespace" is another label and is kept.
// Filters on VictoriaMetrics' tenant labels vm_account_id and vm_project_id
// are refused. Expressions without selectors, such as vector(1) or time(),
// read no series and are allowed: `q or vector(1)` keeps a workload active,
// but only the caller's own, since q still reads only its namespace.
//
// WITH templates and the built-in templates ru() and ttf() are refused:
// metricsql expands them before it returns and nesting makes that
// exponential in the length of expr.
//
// The result is canonical: filters, or-branches and grouping labels are
// sorted and deduplicated, numbers and function names normalised, so
// equivalent queries from one namespace share one string. Both expr and the
// result must fit in MaxLength, so Namespace(Namespace(q)) == Namespace(q).
// Errors are *Error.
func Namespace(expr, namespace string, opts Options) (string, error) {
	label, maxLen := cmp.Or(opts.NamespaceLabel, DefaultNamespaceLabel), cmp.Or(opts.MaxLength, DefaultMaxLength)
	if !isLabelName(label) {
		return "", newError(ReasonOptions, "namespace label %q is not a label name", label)
	}
	if maxLen < 0 {
		return "", newError(ReasonOptions, "max length %d, must be positive", maxLen)
	}
	if namespace == "" {
		return "", newError(ReasonNamespace, "empty namespace")
	}
	if len(validation.IsDNS1123Label(namespace)) > 0 {
		return "", newError(ReasonNamespace, "namespace %q is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)", namespace)
	}
	if strings.TrimSpace(expr) == "" {
		return "", newError(ReasonEmpty, "empty expression")
	}
	if len(expr) > maxLen {
		return "", newError(ReasonTooLong, "expression is %d bytes, max %d", len(expr), maxLen)
	}
	if word := findExpandingTemplate(expr); strings.EqualFold(word, "with") {
		return "", newError(ReasonUnsupported, "WITH templates are not supported")
	} else if word != "" {
		return "", newError(ReasonUnsupported, "%s() is not supported", word)
	}
	e, err := metricsql.Parse(expr)
	if err != nil {
		return "", &Error{Reason: ReasonParse, Err: err}
	}
	p := pinner{label: label, namespace: namespace}
	if e, err = p.walk(e); err != nil {
		return "", &Error{Reason: ReasonUnsupported, Err: err}
	}
	out := string(e.AppendString(nil))
	if len(out) > maxLen { // so that Namespace accepts its own output
		return "", newError(ReasonTooLong, "enforced expression is %d bytes, max %d", len(out), maxLen)
	}
	if err := p.verify(out); err != nil {
		return "", &Error{Reason: ReasonUnverified, Err: err}
	}
	return out, nil
}

// pinner rewrites a parsed expression in place into its pinned, canonical form.
type pinner struct {
	label, namespace string
}

func (p pinner) walk(e metricsql.Expr) (metricsql.Expr, error) {
	var err error
	switch t := e.(type) {
	case *metricsql.MetricExpr:
		err = p.pin(t)
	case *metricsql.RollupExpr:
		if t.Expr, err = p.walk(t.Expr); err == nil && t.At != nil {
			t.At, err = p.walk(t.At)
		}
		if err == nil && t.Window == nil && t.Step == nil && !t.InheritStep && t.Offset == nil && t.At == nil {
			return t.Expr, nil // x[$__interval] prints as x: make the tree say so too
		}
		// metricsql prints x @ (y[1m]) as x @ y[1m], which does not parse,
		// and (-1) @ 0 as -1 @ 0, which reads back as -(1 @ 0).
		if _, ok := t.At.(*metricsql.RollupExpr); ok {
			t.At = parens(t.At)
		}
		if isNegative(t.Expr) {
			t.Expr = parens(t.Expr)
		}
	case *metricsql.FuncExpr:
		t.Name = strings.ToLower(t.Name) // metricsql ignores case; Prometheus does not
		err = p.walkAll(t.Args)
	case *metricsql.AggrFuncExpr:
		if err = sortIdents(&t.Modifier); err == nil {
			err = p.walkAll(t.Args)
		}
	case *metricsql.BinaryOpExpr:
		err = cmp.Or(sortIdents(&t.GroupModifier), sortIdents(&t.JoinModifier))
		if err != nil {
			break
		}
		if t.Left, err = p.walk(t.Left); err == nil {
			t.Right, err = p.walk(t.Right)
		}
		// metricsql prints (-2) ^ x as -2 ^ x, which reads back as -(2 ^ x).
		if isNegative(t.Left) && bindsTighterThanMinus(t.Op) {
			t.Left = parens(t.Left)
		}
	case *metricsql.NumberExpr:
		// Drop the literal's spelling (1e3, 0x10, 1k) and negative zero,
		// which metricsql prints as -0 and reads back as 0 - 0.
		n := t.N
		if n == 0 {
			n = 0
		}
		return &metricsql.NumberExpr{N: n}, nil
	case *metricsql.StringExpr, *metricsql.DurationExpr:
	default:
		return nil, fmt.Errorf("unsupported expression %T", e)
	}
	return e, err
}

// parens returns e in parentheses, as metricsql prints a union of one;
// metricsql.Parse drops them again.
func parens(e metricsql.Expr) metricsql.Expr {
	return &metricsql.FuncExpr{Args: []metricsql.Expr{e}}
}

func (p pinner) walkAll(args []metricsql.Expr) error {
	for i := range args {
		var err error
		if args[i], err = p.walk(args[i]); err != nil {
			return err
		}
	}
	return nil
}

// pin replaces me's filters on the namespace label, in every or-branch, with
// one equality filter on the namespace, then sorts and deduplicates. It
// builds new slices: metricsql may share a selector's filters between nodes.
func (p pinner) pin(me *metricsql.MetricExpr) error {
	branches := me.LabelFilterss
	if len(branches) == 0 {
		branches = [][]metricsql.LabelFilter{nil} // {}
	}
	pinned := make([][]metricsql.LabelFilter, 0, len(branches))
	for _, filters := range branches {
		b := make([]metricsql.LabelFilter, 0, len(filters)+1)
		for _, f := range filters {
			if err := checkName(f.Label); err != nil {
				return err
			}
			if f.Label == "vm_account_id" || f.Label == "vm_project_id" { // VictoriaMetrics' /select/multitenant
				return fmt.Errorf("label %q selects a VictoriaMetrics tenant and is not allowed", f.Label)
			}
			if f.Label == "__name__" && !f.IsNegative && !f.IsRegexp && f.Value != "" {
				if err := checkName(f.Value); err != nil { // printed as an identifier
					return err
				}
			}
			if f.Label != p.label {
				b = append(b, f)
			}
		}
		b = append(b, metricsql.LabelFilter{Label: p.label, Value: p.namespace})
		slices.SortFunc(b, compareFilters)
		pinned = append(pinned, slices.Compact(b))
	}
	slices.SortFunc(pinned, func(a, b []metricsql.LabelFilter) int {
		return slices.CompareFunc(a, b, compareFilters)
	})
	me.LabelFilterss = slices.CompactFunc(pinned, slices.Equal)
	return nil
}

// checkName refuses a label or metric name that metricsql prints as an
// identifier it cannot read back: empty, invalid UTF-8, U+FFFD or not
// printable (metricsql v0.87.3 escapes those above U+00FF wrongly).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty label name")
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) {
		return fmt.Errorf("name %q is not valid UTF-8 or not printable", name)
	}
	return nil
}

// verify parses the canonical text again and checks that every selector in
// it is pinned, so that a quirk of metricsql's printer cannot unpin one.
func (p pinner) verify(s string) error {
	e, err := metricsql.Parse(s)
	if err != nil {
		return fmt.Errorf("canonical form %q does not parse: %w", s, err)
	}
	var escaped error
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		if me, ok := x.(*metricsql.MetricExpr); ok && escaped == nil && !p.pinned(me) {
			escaped = fmt.Errorf("selector %s is not pinned to the namespace", me.AppendString(nil))
		}
	})
	return escaped
}

func (p pinner) pinned(me *metricsql.MetricExpr) bool {
	if len(me.LabelFilterss) == 0 {
		return false
	}
	for _, filters := range me.LabelFilterss {
		n := 0
		for _, f := range filters {
			if f.Label == p.label {
				n++
				if f.Value != p.namespace || f.IsNegative || f.IsRegexp {
					return false
				}
			}
		}
		if n != 1 {
			return false
		}
	}
	return true
}

// compareFilters orders the metric name first, then filters as printed.
func compareFilters(a, b metricsql.LabelFilter) int {
	key := func(f metricsql.LabelFilter) string {
		if f.Label == "__name__" && !f.IsNegative && !f.IsRegexp {
			return "0" + f.Value
		}
		return "1" + string(f.AppendString(nil))
	}
	return strings.Compare(key(a), key(b))
}

// sortIdents sorts and deduplicates the labels of by, without, on, ignoring,
// group_left and group_right, whose order does not change the result.
func sortIdents(m *metricsql.ModifierExpr) error {
	for _, name := range m.Args {
		if err := checkName(name); err != nil {
			return err
		}
	}
	slices.Sort(m.Args)
	m.Args = slices.Compact(m.Args)
	return nil
}

func isNegative(e metricsql.Expr) bool {
	n, ok := e.(*metricsql.NumberExpr)
	return ok && n.N < 0
}

func bindsTighterThanMinus(op string) bool {
	switch op {
	case "*", "/", "%", "atan2", "^":
		return true
	}
	return false
}

// findExpandingTemplate returns the identifier in s that may call a WITH
// template or the built-in ru() or ttf(), or "". metricsql expands those by
// copying arguments, before Parse returns, and nesting them is exponential
// (a 362-byte chain of WITH templates expands to 25 MB in 22 s). The scan
// follows metricsql's lexer (comments, string literals, identifiers with
// escapes) and errs only towards finding one: an identifier followed by "("
// that holds an escape or, in lower case, ends in with, ru or ttf.
func findExpandingTemplate(s string) string {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '#':
			i += strings.IndexByte(s[i:]+"\n", '\n') + 1
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
		default:
			n := identRun(s[i:])
			if n == 0 {
				i++
				continue
			}
			word := s[i : i+n]
			i += n
			rest := strings.TrimLeft(s[i:], " \t\n\v\f\r")
			for strings.HasPrefix(rest, "#") {
				_, rest, _ = strings.Cut(rest, "\n")
				rest = strings.TrimLeft(rest, " \t\n\v\f\r")
			}
			lower := strings.ToLower(word)
			if strings.HasPrefix(rest, "(") && (strings.Contains(word, `\`) ||
				strings.HasSuffix(lower, "with") || strings.HasSuffix(lower, "ru") || strings.HasSuffix(lower, "ttf")) {
				return word
			}
		}
	}
	return ""
}

// skipString returns the index just after the string literal at s[i], or
// len(s) when it is not closed: a quote preceded by an even number of
// backslashes closes it.
func skipString(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] != s[i] {
			continue
		}
		bs := 0
		for s[j-bs-1] == '\\' {
			bs++
		}
		if bs%2 == 0 {
			return j + 1
		}
	}
	return len(s)
}

// identRun returns the length of the longest prefix of s made of identifier
// characters and backslash escapes. It includes digits, so an identifier that
// metricsql lexes after a number ends the run.
func identRun(s string) int {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\\' && i+size < len(s) {
			_, n := utf8.DecodeRuneInString(s[i+size:])
			i += size + n
			continue
		}
		if !unicode.IsLetter(r) && r != '_' && r != ':' && r != '.' && (r < '0' || r > '9') {
			break
		}
		i += size
	}
	return i
}

// isLabelName reports whether s is a Prometheus label name that is not
// reserved (leading "__").
func isLabelName(s string) bool {
	return model.LegacyValidation.IsValidLabelName(s) && !strings.HasPrefix(s, "__")
}

var _ error = (*Error)(nil)
