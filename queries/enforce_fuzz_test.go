package queries

import (
	"errors"
	"testing"
)

// FuzzEnforce checks, for any expression, that Enforce does not panic, that
// it fails only with an *EnforceError, and that what it returns re-parses
// with every selector pinned to the namespace and is its own canonical form.
func FuzzEnforce(f *testing.F) {
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
		out, err := Enforce(expr, enforceNS, EnforceOptions{})
		if err != nil {
			var ee *EnforceError
			if !errors.As(err, &ee) {
				t.Fatalf("Enforce(%q): %v is not an *EnforceError", expr, err)
			}
			if ee.Reason == ReasonUnverified { // the final check caught a bug
				t.Fatalf("Enforce(%q): %v", expr, err)
			}
			return
		}
		assertPinned(t, out, "namespace", enforceNS)
		again, err := Enforce(out, enforceNS, EnforceOptions{})
		if err != nil {
			t.Fatalf("Enforce(%q) = %q, which Enforce refuses: %v", expr, out, err)
		}
		if again != out {
			t.Fatalf("Enforce(%q) not idempotent:\nonce:  %s\ntwice: %s", expr, out, again)
		}
	})
}
