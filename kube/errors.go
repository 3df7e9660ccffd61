package kube

import (
	"errors"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// rbacFile is where ebb's permissions are granted.
const rbacFile = "deploy/02-rbac.yaml"

// AccessError is a request the API server refused because ebb lacks a
// permission (HTTP 403 Forbidden).
type AccessError struct {
	Verb      string // list, watch or patch
	Resource  string // deployments.apps or statefulsets.apps
	Namespace string // empty for all namespaces
	Err       error  // the API server's answer
}

func (e *AccessError) Error() string {
	where := "in all namespaces"
	if e.Namespace != "" {
		where = "in namespace " + strconv.Quote(e.Namespace)
	}
	return e.Verb + " " + e.Resource + " " + where + ": " + e.Err.Error() + "; ebb's permissions are in " + rbacFile
}

func (e *AccessError) Unwrap() error { return e.Err }

// apiStatus returns the API server's own error inside err, without the
// wrapping client-go adds, or err itself.
func apiStatus(err error) error {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		if e, ok := s.(error); ok {
			return e
		}
	}
	return err
}
