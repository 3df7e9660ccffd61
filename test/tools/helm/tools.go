//go:build tools

// Package tools pins the helm binary that the chart's tests run.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
