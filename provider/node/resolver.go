package node

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// apiResolver reads ConfigMaps and Secrets straight from the API server
// when a pod is deployed: a cluster-wide informer per kind would cost far
// more than the few reads deployments need, and would need list/watch on
// every Secret. Translation is synchronous and has no context of its own,
// so each resolver is made for one deploy call and reads with its context.
type apiResolver struct {
	get func(key types.NamespacedName, obj client.Object) error
}

var _ translate.Resolver = apiResolver{}

func newAPIResolver(ctx context.Context, reader client.Reader) apiResolver {
	return apiResolver{get: func(key types.NamespacedName, obj client.Object) error {
		return reader.Get(ctx, key, obj)
	}}
}

// ConfigMap implements translate.Resolver.
func (r apiResolver) ConfigMap(namespace, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	if err := r.get(types.NamespacedName{Namespace: namespace, Name: name}, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}

// Secret implements translate.Resolver.
func (r apiResolver) Secret(namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.get(types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
