package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbscale/ebb/queries"
)

// ErrNoWorkload is returned by AnnotateWorkload when there is neither a
// Deployment nor a StatefulSet of the workload's name.
var ErrNoWorkload = errors.New("no Deployment or StatefulSet of that name")

// PatchAnnotations sets annotations on the Deployment or StatefulSet
// namespace/name with one JSON merge patch of metadata.annotations, leaving
// its other annotations and its spec as they are. The API server applies a
// merge patch to the object as it is when the patch arrives, so a Conflict
// (a concurrent write won the race) is retried at once, up to 5 attempts.
//
// The error is an *AccessError when the API server forbids the patch, and
// one for which apierrors.IsNotFound reports true when the object does not
// exist. An empty annotations map patches nothing.
func PatchAnnotations(ctx context.Context, client kubernetes.Interface, kind Kind, namespace, name string, annotations map[string]string) error {
	if len(annotations) == 0 {
		return nil
	}
	body, err := AnnotationsPatch(annotations, "")
	if err != nil {
		return err
	}
	// Strict: the API server refuses a patch with a field it does not know
	// instead of dropping it.
	opts := metav1.PatchOptions{FieldManager: fieldManager, FieldValidation: metav1.FieldValidationStrict}
	apps := client.AppsV1()
	for attempt := 1; ; attempt++ {
		switch kind {
		case KindDeployment:
			_, err = apps.Deployments(namespace).Patch(ctx, name, types.MergePatchType, body, opts)
		case KindStatefulSet:
			_, err = apps.StatefulSets(namespace).Patch(ctx, name, types.MergePatchType, body, opts)
		default:
			return fmt.Errorf("patch %s/%s: unknown kind %q", namespace, name, kind)
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsForbidden(err):
			return &AccessError{Verb: "patch", Resource: kind.resource(), Namespace: namespace, Err: apiStatus(err)}
		case apierrors.IsConflict(err) && attempt < conflictAttempts && ctx.Err() == nil:
			continue
		case apierrors.IsConflict(err):
			return fmt.Errorf("patch %s in namespace %s: %d conflicts in a row: %w", kind.resource(), strconv.Quote(namespace), attempt, apiStatus(err))
		}
		return fmt.Errorf("patch %s in namespace %s: %w", kind.resource(), strconv.Quote(namespace), apiStatus(err))
	}
}

// AnnotateWorkload sets annotations on workload w, whose kind the caller
// does not know: on the Deployment of its name, else on the StatefulSet. It
// returns the kind it patched. With neither, the error wraps ErrNoWorkload.
// A forbidden patch of one kind does not stop the other from being tried
// (RBAC is checked before existence, so it says nothing about whether the
// object exists); when nothing was patched, the first *AccessError is
// returned. An empty annotations map patches nothing and returns "".
func AnnotateWorkload(ctx context.Context, client kubernetes.Interface, w queries.WorkloadKey, annotations map[string]string) (Kind, error) {
	if len(annotations) == 0 {
		return "", nil
	}
	var denied *AccessError
	for _, kind := range []Kind{KindDeployment, KindStatefulSet} {
		err := PatchAnnotations(ctx, client, kind, w.Namespace, w.Name, annotations)
		var ae *AccessError
		switch {
		case err == nil:
			return kind, nil
		case apierrors.IsNotFound(err):
		case errors.As(err, &ae):
			if denied == nil {
				denied = ae
			}
		default:
			return "", err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", fmt.Errorf("annotate %s: %w", w, ErrNoWorkload)
}
