package translate

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Resolver looks up the ConfigMaps and Secrets a pod refers to. Their
// contents are copied into the application at deploy time because devices
// cannot reach the Kubernetes API. The caller implements it with a
// Kubernetes client or lister; an implementation that needs a context should
// capture it when it is built, since translation itself is synchronous.
//
// Implementations report a missing object with an error for which
// apierrors.IsNotFound is true (what client-go returns) or which wraps
// ErrMissingReference; optional references are then skipped.
type Resolver interface {
	ConfigMap(namespace, name string) (*corev1.ConfigMap, error)
	Secret(namespace, name string) (*corev1.Secret, error)
}

// StaticResolver serves ConfigMaps and Secrets from maps keyed by
// "namespace/name". It suits tests and callers that have already fetched
// everything a pod needs.
type StaticResolver struct {
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
}

// ConfigMap implements Resolver.
func (r StaticResolver) ConfigMap(namespace, name string) (*corev1.ConfigMap, error) {
	if cm, ok := r.ConfigMaps[namespace+"/"+name]; ok && cm != nil {
		return cm, nil
	}
	return nil, fmt.Errorf("configmap %s/%s: %w", namespace, name, ErrMissingReference)
}

// Secret implements Resolver.
func (r StaticResolver) Secret(namespace, name string) (*corev1.Secret, error) {
	if s, ok := r.Secrets[namespace+"/"+name]; ok && s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, ErrMissingReference)
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrMissingReference) || apierrors.IsNotFound(err)
}

// objectData is the key/value view shared by ConfigMaps and Secrets, so that
// env and volume code handles both the same way.
type objectData struct {
	kind string // "configmap" or "secret", for messages
	data map[string][]byte
}

// lookupObject fetches a ConfigMap or Secret. A nil result with a nil error
// means "missing, and the reference is optional". Objects are fetched once
// per translation, so every reference sees the same version even when the
// resolver reads a live API.
func (t *translator) lookupObject(field, kind, name string, optional bool) (*objectData, error) {
	key := kind + "/" + name
	if cached, ok := t.objects[key]; ok {
		if cached.err != nil {
			return t.missing(field, kind, name, optional, cached.err)
		}
		return cached.obj, nil
	}
	obj, err := t.fetchObject(kind, name)
	if t.objects == nil {
		t.objects = map[string]fetched{}
	}
	t.objects[key] = fetched{obj: obj, err: err}
	if err != nil {
		return t.missing(field, kind, name, optional, err)
	}
	return obj, nil
}

type fetched struct {
	obj *objectData
	err error
}

func (t *translator) fetchObject(kind, name string) (*objectData, error) {
	if t.opts.Resolver == nil {
		return nil, fmt.Errorf("no resolver was configured: %w", ErrMissingReference)
	}
	out := &objectData{kind: kind, data: map[string][]byte{}}
	var err error
	switch kind {
	case "configmap":
		var cm *corev1.ConfigMap
		cm, err = t.opts.Resolver.ConfigMap(t.pod.Namespace, name)
		if err == nil && cm == nil {
			err = ErrMissingReference
		}
		if err == nil {
			for k, v := range cm.Data {
				out.data[k] = []byte(v)
			}
			for k, v := range cm.BinaryData {
				out.data[k] = v
			}
		}
	case "secret":
		var s *corev1.Secret
		s, err = t.opts.Resolver.Secret(t.pod.Namespace, name)
		if err == nil && s == nil {
			err = ErrMissingReference
		}
		if err == nil {
			for k, v := range s.Data {
				out.data[k] = v
			}
			// StringData is write-only in the API, but objects built in
			// memory (tests, callers) may still carry it.
			for k, v := range s.StringData {
				out.data[k] = []byte(v)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// missing turns a lookup failure into the result for one reference: skip an
// optional reference to a missing object, fail a required one.
func (t *translator) missing(field, kind, name string, optional bool, err error) (*objectData, error) {
	if isNotFound(err) {
		if optional {
			t.warnf("%s: %s %s/%s not found; skipped because the reference is optional", field, kind, t.pod.Namespace, name)
			return nil, nil
		}
		if !errors.Is(err, ErrMissingReference) {
			err = fmt.Errorf("%w: %w", ErrMissingReference, err)
		}
		return nil, fmt.Errorf("%s: %s %s/%s not found; create it or mark the reference optional: %w",
			field, kind, t.pod.Namespace, name, err)
	}
	return nil, fmt.Errorf("%s: reading %s %s/%s: %w", field, kind, t.pod.Namespace, name, err)
}
