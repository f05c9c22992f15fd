package controllers

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// patchStatus computes every condition from what the steps found and
// patches status. It runs on every exit path of Reconcile, so conditions
// and observedGeneration never describe an older attempt.
func (r *FleetBindingReconciler) patchStatus(ctx context.Context, base *vkv1.FleetBinding, s *scope) error {
	b := s.binding
	st := &b.Status
	st.ObservedGeneration = b.Generation
	st.NodeName = b.EffectiveNodeName()
	st.Shard = ""
	if r.Shard != nil {
		st.Shard = r.Shard.Name()
	}
	st.InsecureSkipTLSVerify = false
	if s.conn != nil {
		st.FlightctlURL = s.conn.URL
		st.InsecureSkipTLSVerify = s.conn.Insecure
	}
	if inv := s.report.Inventory; inv != nil {
		summary := inv.Summary
		st.Devices = &summary
		st.UnusableDevices = inv.UnusableDevices
		st.Capacity = inv.Capacity
		st.Allocatable = inv.Allocatable
	}
	st.DisconnectedDevices = s.report.DisconnectedDevices
	st.Pods = s.report.Pods

	setConditions(s)

	err := r.Client.Status().Patch(ctx, b, client.MergeFrom(base))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		log.FromContext(ctx).Error(err, "Patching FleetBinding status failed")
	}
	return err
}

// configErrorReasons are the failures found before any Flightctl call.
var configErrorReasons = map[string]bool{
	vkv1.ReasonSecretNotFound:   true,
	vkv1.ReasonSecretInvalid:    true,
	vkv1.ReasonInvalidURL:       true,
	vkv1.ReasonInvalidCA:        true,
	vkv1.ReasonInvalidSelector:  true,
	vkv1.ReasonNodeNameConflict: true,
}

// setConditions computes every condition from what the reconcile found.
// It reads nothing but s, so its table tests need no API server.
func setConditions(s *scope) {
	problem := s.problem()
	setConnectedCondition(s, problem)
	setNodeCondition(s, problem)
	setDevicesCondition(s)
	setDegradedCondition(s, problem)
	setReadyCondition(s)
}

func setConnectedCondition(s *scope, problem *connection.Error) {
	b := s.binding
	switch {
	case problem != nil:
		setCondition(b, vkv1.ConditionFlightctlConnected, metav1.ConditionFalse, problem.Reason, problem.Message)
	case s.conn != nil && s.report.Inventory != nil:
		setCondition(b, vkv1.ConditionFlightctlConnected, metav1.ConditionTrue, vkv1.ReasonConnected,
			fmt.Sprintf("Flightctl API at %s answered", s.conn.URL))
	default:
		setCondition(b, vkv1.ConditionFlightctlConnected, metav1.ConditionUnknown, vkv1.ReasonWaitingForFlightctl,
			"waiting for the first successful call to Flightctl")
	}
}

func setNodeCondition(s *scope, problem *connection.Error) {
	b := s.binding
	node := b.EffectiveNodeName()
	switch {
	case problem != nil && problem.Reason == vkv1.ReasonNodeNameConflict:
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionFalse, vkv1.ReasonNodeNameConflict, problem.Message)
	case s.report.Running:
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionTrue, vkv1.ReasonNodeRunning,
			fmt.Sprintf("virtual node %s is registered and its lease is renewed", node))
	case problem != nil && configErrorReasons[problem.Reason]:
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionFalse, vkv1.ReasonWaitingForFlightctl,
			fmt.Sprintf("virtual node %s is not started until the binding's configuration is fixed", node))
	case s.report.Message != "":
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionFalse, vkv1.ReasonNodeFailed, s.report.Message)
	case !s.nodesEnabled:
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionFalse, vkv1.ReasonNodeStarting,
			"this manager runs without virtual nodes (--enable-nodes=false)")
	default:
		setCondition(b, vkv1.ConditionNodeRegistered, metav1.ConditionFalse, vkv1.ReasonNodeStarting,
			fmt.Sprintf("virtual node %s is starting", node))
	}
}

func setDevicesCondition(s *scope) {
	b := s.binding
	inv := s.report.Inventory
	switch {
	case inv == nil:
		setCondition(b, vkv1.ConditionDevicesAvailable, metav1.ConditionUnknown, vkv1.ReasonWaitingForFlightctl,
			"device inventory not read yet")
	case inv.Summary.Total == 0 && b.FleetWide():
		setCondition(b, vkv1.ConditionDevicesAvailable, metav1.ConditionFalse, vkv1.ReasonNoDevices, fmt.Sprintf(
			"Flightctl Fleet %s owns no device: check the Fleet exists and its selector matches devices", b.Spec.FlightctlFleet))
	case inv.Summary.Total == 0:
		setCondition(b, vkv1.ConditionDevicesAvailable, metav1.ConditionFalse, vkv1.ReasonNoDevices, fmt.Sprintf(
			"no Flightctl device matches selector %q: label devices with it or change spec.deviceSelector", b.EffectiveDeviceSelector()))
	case inv.Summary.Online == 0:
		setCondition(b, vkv1.ConditionDevicesAvailable, metav1.ConditionFalse, vkv1.ReasonNoUsableDevices, fmt.Sprintf(
			"%d device(s) match but none is online and free of Flightctl fleet ownership (%d disconnected, %d owned by a fleet)",
			inv.Summary.Total, inv.Summary.Disconnected, inv.Summary.Owned))
	default:
		setCondition(b, vkv1.ConditionDevicesAvailable, metav1.ConditionTrue, vkv1.ReasonDevicesOnline, fmt.Sprintf(
			"%d of %d device(s) online and usable", inv.Summary.Online, inv.Summary.Total))
	}
}

func setDegradedCondition(s *scope, problem *connection.Error) {
	b := s.binding
	var problems []string
	reason := vkv1.ReasonHealthy
	add := func(r, msg string) {
		if reason == vkv1.ReasonHealthy {
			reason = r
		}
		problems = append(problems, msg)
	}
	if problem != nil && problem.Transient {
		add(problem.Reason, problem.Message)
	}
	if inv := s.report.Inventory; inv != nil {
		if inv.Summary.Disconnected > 0 {
			add(vkv1.ReasonDevicesDisconnected, fmt.Sprintf("%d device(s) disconnected", inv.Summary.Disconnected))
		}
		claimed := 0
		for _, u := range inv.UnusableDevices {
			if u.Reason == inventory.ReasonClaimedByOtherBinding {
				claimed++
			}
		}
		if claimed > 0 {
			add(vkv1.ReasonDeviceClaimed, fmt.Sprintf("%d device(s) already used by another FleetBinding and not used here (see status.unusableDevices); make the device selectors disjoint", claimed))
		}
		if inv.Summary.Owned > 0 {
			add(vkv1.ReasonDevicesOwnedByFleet, fmt.Sprintf("%d device(s) owned by a Flightctl fleet and not used (see status.unusableDevices)", inv.Summary.Owned))
		}
	}
	if s.conn != nil && s.conn.Insecure {
		add(vkv1.ReasonInsecureTLS, "TLS verification of the Flightctl API is off (spec.flightctl.insecureSkipTLSVerify)")
	}
	if len(problems) == 0 {
		setCondition(b, vkv1.ConditionDegraded, metav1.ConditionFalse, vkv1.ReasonHealthy, "nothing needs attention")
		return
	}
	setCondition(b, vkv1.ConditionDegraded, metav1.ConditionTrue, reason, strings.Join(problems, "; "))
}

// setReadyCondition summarises: Ready needs a connection, a running node
// and a usable device; otherwise it repeats the first blocking reason.
func setReadyCondition(s *scope) {
	b := s.binding
	for _, typ := range []string{vkv1.ConditionFlightctlConnected, vkv1.ConditionNodeRegistered, vkv1.ConditionDevicesAvailable} {
		c := findCondition(b, typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			reason, msg := vkv1.ReasonNotReady, typ+" is not True"
			if c != nil {
				reason, msg = c.Reason, c.Message
			}
			setCondition(b, vkv1.ConditionReady, metav1.ConditionFalse, reason, msg)
			return
		}
	}
	setCondition(b, vkv1.ConditionReady, metav1.ConditionTrue, vkv1.ReasonReady, fmt.Sprintf(
		"node %s serves %d online device(s)", b.EffectiveNodeName(), s.report.Inventory.Summary.Online))
}

func findCondition(b *vkv1.FleetBinding, typ string) *metav1.Condition {
	for i := range b.Status.Conditions {
		if b.Status.Conditions[i].Type == typ {
			return &b.Status.Conditions[i]
		}
	}
	return nil
}
