package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var _ = Describe("FleetBinding in fleet-wide mode", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("stands for the devices the Flightctl Fleet owns, usable and summed", func() {
		sim := startSim(flightctlsim.Options{})
		Expect(sim.AddFleet(flightctlsim.FleetConfig{Name: "owned-fleet", Selector: map[string]string{"owned": "yes"}})).To(Succeed())
		for _, name := range []string{"owned-1", "owned-2", "owned-3"} {
			Expect(sim.AddDevice(flightctlsim.DeviceConfig{Name: name, Labels: map[string]string{"owned": "yes"}, CPU: 2, Memory: "4Gi"})).To(Succeed())
		}
		Expect(k8sClient.Create(ctx, credentials(ns, "creds", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}))).To(Succeed())
		fb := binding(ns, "fleetwide", ns, "creds")
		fb.Spec.FlightctlFleet = "owned-fleet"
		Expect(k8sClient.Create(ctx, fb)).To(Succeed())
		key := client.ObjectKeyFromObject(fb)
		Eventually(func() *vkv1.DeviceSummary {
			var b vkv1.FleetBinding
			_ = k8sClient.Get(ctx, key, &b)
			return b.Status.Devices
		}, 20*time.Second).Should(Equal(&vkv1.DeviceSummary{Total: 3, Online: 3}), "the fleet's devices only (the built-in edge-fleet-1 devices are not owned by it)")
		var got vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, key, &got)).To(Succeed())
		Expect(got.Status.UnusableDevices).To(BeEmpty())
		Expect(got.Status.Capacity.Cpu().Cmp(resource.MustParse("6"))).To(Equal(0))
		Expect(got.Status.Allocatable.Memory().Cmp(resource.MustParse("10752Mi"))).To(Equal(0), "3 x (4Gi - 512Mi)")
		Expect(meta.FindStatusCondition(got.Status.Conditions, vkv1.ConditionDevicesAvailable)).To(haveReason(metav1.ConditionTrue, vkv1.ReasonDevicesOnline))

		By("the fleet mode cannot be switched off on an existing binding")
		got.Spec.FlightctlFleet = ""
		err := k8sClient.Update(ctx, &got)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("flightctlFleet cannot be added or removed"))
	})

	It("says so when the Flightctl Fleet owns no device", func() {
		sim := startSim(flightctlsim.Options{})
		Expect(k8sClient.Create(ctx, credentials(ns, "creds", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}))).To(Succeed())
		fb := binding(ns, "fleetwide", ns, "creds")
		fb.Spec.FlightctlFleet = "no-such-fleet"
		Expect(k8sClient.Create(ctx, fb)).To(Succeed())
		Eventually(condition(ctx, client.ObjectKeyFromObject(fb), vkv1.ConditionDevicesAvailable), 20*time.Second).Should(And(
			haveReason(metav1.ConditionFalse, vkv1.ReasonNoDevices),
			HaveField("Message", ContainSubstring("Flightctl Fleet no-such-fleet owns no device"))))
	})

	DescribeTable("the API schema refuses inconsistent fleet-wide specs",
		func(mutate func(*vkv1.FleetBinding), msg string) {
			fb := binding(ns, "invalid", "edge-fleet-1", "creds")
			mutate(fb)
			err := k8sClient.Create(ctx, fb)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(msg))
		},
		Entry("device selector with a Flightctl Fleet", func(b *vkv1.FleetBinding) {
			b.Spec.FlightctlFleet, b.Spec.DeviceSelector = "f1", "site=a"
		}, "deviceSelector and flightctlFleet are exclusive"),
		Entry("rollout policy without a Flightctl Fleet", func(b *vkv1.FleetBinding) {
			b.Spec.RolloutPolicy = &vkv1.RolloutPolicy{SuccessThreshold: "90%"}
		}, "rolloutPolicy needs flightctlFleet"),
		Entry("bad Fleet name", func(b *vkv1.FleetBinding) { b.Spec.FlightctlFleet = "Bad_Name" }, "spec.flightctlFleet"),
		Entry("bad batch limit", func(b *vkv1.FleetBinding) {
			b.Spec.FlightctlFleet = "f1"
			b.Spec.RolloutPolicy = &vkv1.RolloutPolicy{Batches: []vkv1.RolloutBatch{{Limit: "150%"}}}
		}, "spec.rolloutPolicy.batches[0].limit"),
		Entry("empty disruption budget", func(b *vkv1.FleetBinding) {
			b.Spec.FlightctlFleet = "f1"
			b.Spec.RolloutPolicy = &vkv1.RolloutPolicy{DisruptionBudget: &vkv1.DisruptionBudget{}}
		}, "set maxUnavailable or minAvailable"),
	)
})
