package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
)

// credentialsSecretIndex indexes bindings by "namespace/name" of their
// credentials Secret.
const credentialsSecretIndex = "spec.flightctl.credentialsSecretRef"

// SetupWithManager registers the reconciler. Besides bindings it watches the
// settings ConfigMap (the manager's cache is restricted to that one object)
// so a changed default reaches every binding, and the metadata of Secrets
// (never their data: the cache strips annotations too, where kubectl keeps
// a last-applied copy) so a rotated credentials Secret is used within
// seconds. Secret contents are still read with get, uncached.
func (r *FleetBindingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &vkv1.FleetBinding{}, credentialsSecretIndex,
		func(o client.Object) []string {
			b := o.(*vkv1.FleetBinding)
			return []string{b.Namespace + "/" + b.Spec.Flightctl.CredentialsSecretRef.Name}
		}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Triggers != nil {
		b = b.WatchesRawSource(source.Channel(r.Triggers, &handler.EnqueueRequestForObject{}))
	}
	if r.Shard != nil {
		b = b.WatchesRawSource(source.Channel(r.Shard.Triggers(), &handler.EnqueueRequestForObject{}))
	}
	return b.
		For(&vkv1.FleetBinding{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.allBindings),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return o.GetName() == settings.ConfigMapName && o.GetNamespace() == r.Namespace
			}))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.bindingsUsingSecret)).
		Named("fleetbinding").
		Complete(r)
}

// bindingsUsingSecret maps a Secret to the bindings whose credentials it
// holds.
func (r *FleetBindingReconciler) bindingsUsingSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list vkv1.FleetBindingList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{credentialsSecretIndex: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

func (r *FleetBindingReconciler) allBindings(ctx context.Context, _ client.Object) []reconcile.Request {
	var list vkv1.FleetBindingList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
