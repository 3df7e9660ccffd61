//go:build tools

// Package tools pins the KEDA operator that the tests run.
package tools

import _ "github.com/kedacore/keda/v2/cmd/operator"
