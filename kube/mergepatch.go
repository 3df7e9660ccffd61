package kube

import "encoding/json"

// AnnotationsPatch is the JSON merge patch (RFC 7386) that sets annotations
// on an object and leaves its other annotations and its spec as they are.
// It is the one patch body ebb sends to a Deployment or StatefulSet, and the
// one `ebb recommend --annotate` prints for kubectl.
//
// A non-empty resourceVersion is sent as metadata.resourceVersion, which the
// API server takes as a precondition: the patch lands only on that version
// of the object, and a Conflict (409) says that someone wrote it since. An
// empty one patches whatever version is current.
func AnnotationsPatch(annotations map[string]string, resourceVersion string) ([]byte, error) {
	type meta struct {
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		Annotations     map[string]string `json:"annotations"`
	}
	return json.Marshal(struct {
		Metadata meta `json:"metadata"`
	}{meta{resourceVersion, annotations}})
}
