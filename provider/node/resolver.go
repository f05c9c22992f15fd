package node

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apiResolver reads ConfigMaps and Secrets straight from the API server
// when a pod is deployed: a cluster-wide informer per kind would cost far
// more than the few reads deployments need, and would need list/watch on
// every Secret.
type apiResolver struct {
	ctx    context.Context
	reader client.Reader
}

func (r *apiResolver) ConfigMap(namespace, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	if err := r.reader.Get(r.ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}

func (r *apiResolver) Secret(namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.reader.Get(r.ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
