package placement

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Targeting is what a pod asks about its device. The zero value accepts
// every device. When both fields are set a device must satisfy both.
type Targeting struct {
	// DeviceID is the one device the pod accepts, "" for any.
	DeviceID string
	// Selector is the flightctl.io/device-selector annotation as written,
	// "" for none.
	Selector string

	// selector is Selector parsed; nil when Selector is "".
	selector labels.Selector
}

// TargetingFor reads the pod's targeting. flightctl.io/device-id may be in
// spec.nodeSelector or in the annotations (the annotation exists because
// nodeSelector is immutable and because kube-scheduler would require the
// node itself to carry that label); if both are set they must agree.
// flightctl.io/device-selector is a Kubernetes label selector over device
// labels. Errors are *NoFitError with a permanent reason: a pod whose
// targeting cannot be read never runs until it is rewritten.
func TargetingFor(pod *corev1.Pod) (Targeting, error) {
	var t Targeting
	fromSel, inSel := pod.Spec.NodeSelector[v1alpha1.LabelDeviceID]
	fromAnn, inAnn := pod.Annotations[v1alpha1.LabelDeviceID]
	switch {
	case inSel && inAnn && fromSel != fromAnn:
		return t, &NoFitError{
			Reason: ReasonConflict,
			Message: fmt.Sprintf("Conflicting %s: spec.nodeSelector says %q but the annotation says %q; make them equal or remove one",
				v1alpha1.LabelDeviceID, fromSel, fromAnn),
			permanent: true,
		}
	case inSel:
		t.DeviceID = fromSel
	case inAnn:
		t.DeviceID = fromAnn
	}
	if (inSel || inAnn) && strings.TrimSpace(t.DeviceID) == "" {
		return Targeting{}, &NoFitError{
			Reason:    ReasonInvalidDeviceID,
			Message:   fmt.Sprintf("Empty %s: name a Flightctl device or remove the key", v1alpha1.LabelDeviceID),
			permanent: true,
		}
	}

	// An empty selector annotation narrows nothing, like an empty
	// Kubernetes selector string; treat it as absent.
	text := strings.TrimSpace(pod.Annotations[v1alpha1.AnnotationDeviceSelector])
	if text != "" {
		sel, err := labels.Parse(text)
		if err != nil {
			return Targeting{}, &NoFitError{
				Reason: ReasonInvalidSelector,
				Message: fmt.Sprintf("Invalid %s annotation %q: %v; use Kubernetes label selector syntax, e.g. \"site=lab,gpu in (yes)\"",
					v1alpha1.AnnotationDeviceSelector, text, err),
				permanent: true,
			}
		}
		t.Selector, t.selector = text, sel
	}
	return t, nil
}

// IsZero reports whether the pod accepts any device.
func (t Targeting) IsZero() bool { return t.DeviceID == "" && t.Selector == "" }

// Matches reports whether the device satisfies the targeting. It says
// nothing about whether the device can take the pod now.
func (t Targeting) Matches(d Device) bool {
	if t.DeviceID != "" && d.Name != t.DeviceID {
		return false
	}
	if t.Selector != "" {
		sel := t.selector
		if sel == nil {
			// Built by hand rather than by TargetingFor; a selector
			// that does not parse matches nothing.
			var err error
			if sel, err = labels.Parse(t.Selector); err != nil {
				return false
			}
		}
		if !sel.Matches(labels.Set(d.Labels)) {
			return false
		}
	}
	return true
}

// String is the targeting as messages quote it, e.g.
// "device-id=device-9, selector=site=lab", or "any device".
func (t Targeting) String() string {
	var parts []string
	if t.DeviceID != "" {
		parts = append(parts, "device-id="+t.DeviceID)
	}
	if t.Selector != "" {
		parts = append(parts, "selector="+t.Selector)
	}
	if len(parts) == 0 {
		return "any device"
	}
	return strings.Join(parts, ", ")
}
