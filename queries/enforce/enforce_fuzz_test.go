package enforce

import (
	"errors"
	"testing"
)

// FuzzNamespace checks, for any expression, that Namespace does not panic, that
// it fails only with an *Error, and that what it returns re-parses
// with every selector pinned to the namespace and is its own canonical form.
func FuzzNamespace(f *testing.F) {
	for _, tt := range enforceOrdinaryQueries {
		f.Add(tt.in)
	}
	for _, q := range enforceAdversarialQueries() {
		f.Add(q)
	}
	for _, q := range []string{
		`WITH (a = x) a`, `ru(x, y)`, `ttf(x)`, `x{`, `sum(x`, `foo(x)`, "", " ",
		`x{a=~"("}`, `x[5m] offset 1h @ end()`, `sum(x) by (a) limit 3`,
		`a / on(b) group_left(c) prefix "p" d`, `x{a="\xff"}`, `1 > bool 2`,
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		out, err := Namespace(expr, enforceNS, Options{})
		if err != nil {
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("Namespace(%q): %v is not an *Error", expr, err)
			}
			if ee.Reason == ReasonUnverified { // the final check caught a bug
				t.Fatalf("Namespace(%q): %v", expr, err)
			}
			return
		}
		assertPinned(t, out, "namespace", enforceNS)
		again, err := Namespace(out, enforceNS, Options{})
		if err != nil {
			t.Fatalf("Namespace(%q) = %q, which Namespace refuses: %v", expr, out, err)
		}
		if again != out {
			t.Fatalf("Namespace(%q) not idempotent:\nonce:  %s\ntwice: %s", expr, out, again)
		}
	})
}
