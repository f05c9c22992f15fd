// Package v1alpha1 contains the vk-flightctl API: the FleetBinding kind,
// which binds one set of Flightctl devices to one virtual-kubelet node.
//
// +kubebuilder:object:generate=true
// +groupName=vk.flightctl.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "vk.flightctl.io", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	// It is apimachinery's builder, so the API package needs nothing from
	// controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &FleetBinding{}, &FleetBindingList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
