package node_test

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// fleetSim is the default simulator plus Flightctl Fleet rollout-fleet
// (selector fleetwide=yes, a user's application in its template) owning
// fw-1, fw-2 and fw-3; fw-3 fails every application it starts.
func fleetSim() flightctlsim.Options {
	cfg := flightctlsim.DefaultConfig()
	cfg.Fleets = append(cfg.Fleets, flightctlsim.FleetConfig{Name: "rollout-fleet", Selector: map[string]string{"fleetwide": "yes"},
		Template: json.RawMessage(`{"applications":[{"name":"user-app","appType":"quadlet","inline":[{"path":"user.container","content":"[Container]\nImage=quay.io/example/user:1\n"}]}]}`)})
	for _, name := range []string{"fw-1", "fw-2", "fw-3"} {
		cfg.Devices = append(cfg.Devices, flightctlsim.DeviceConfig{Name: name, Labels: map[string]string{"fleetwide": "yes"},
			CPU: 2, Memory: "4Gi", FailApplications: name == "fw-3"})
	}
	return flightctlsim.Options{Config: cfg}
}

func fleetWideBinding(b *vkv1.FleetBinding) {
	b.Spec.DeviceSelector = ""
	b.Spec.FlightctlFleet = "rollout-fleet"
}

// daemonSet creates a DaemonSet object (envtest runs no controller for
// it) so pods can name it as their controller.
func (f *fixture) daemonSet(ctx context.Context, name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:alpine"}}},
			},
		},
	}
	Expect(k8sClient.Create(ctx, ds)).To(Succeed())
	return ds
}

func ownedBy(ds *appsv1.DaemonSet, image string) func(*corev1.Pod) {
	yes := true
	return func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": ds.Name}
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: &yes}}
		p.Spec.Containers[0].Image = image
	}
}

// template reads the Fleet's template applications from the simulator.
func (f *fixture) template(ctx context.Context) map[string]flightctl.ApplicationSpec {
	c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
	Expect(err).NotTo(HaveOccurred())
	fl, err := c.GetFleet(ctx, "rollout-fleet")
	Expect(err).NotTo(HaveOccurred())
	out := map[string]flightctl.ApplicationSpec{}
	for _, a := range fl.Spec.Template.Spec.Applications {
		out[a.Name] = a
	}
	return out
}

func (f *fixture) rollout(ctx context.Context, name string) func() corev1.PodCondition {
	return func() corev1.PodCondition {
		p := f.getPod(ctx, name)
		if p == nil {
			return corev1.PodCondition{}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == vkv1.PodConditionFleetRollout {
				return c
			}
		}
		return corev1.PodCondition{}
	}
}

func containsImage(image string) OmegaMatcher {
	return WithTransform(func(a flightctl.ApplicationSpec) string {
		out := ""
		for _, file := range a.Inline {
			out += file.Content
		}
		return out
	}, ContainSubstring(image))
}

var _ = Describe("Fleet-wide pods", func() {
	ctx := context.Background()

	It("roll a DaemonSet's pod out to the Flightctl Fleet, name the failing device, update in place and remove", func() {
		f := newFixture(ctx, fleetSim(), fleetWideBinding)
		ds := f.daemonSet(ctx, "agent")
		Expect(k8sClient.Create(ctx, f.pod("agent-v1", "100m", "64Mi", ownedBy(ds, "nginx:1.26")))).To(Succeed())
		app := translate.FleetAppName(f.getPod(ctx, "agent-v1"))

		By("the pod's application joins the user's in the Fleet's template")
		Eventually(func() map[string]flightctl.ApplicationSpec { return f.template(ctx) }, 20*time.Second).Should(And(
			HaveKey("user-app"), HaveKeyWithValue(app, containsImage("docker.io/library/nginx:1.26"))))

		By("Flightctl renders it onto every owned device; two run it, fw-3 fails")
		Eventually(f.rollout(ctx, "agent-v1"), 30*time.Second).Should(And(
			HaveField("Status", corev1.ConditionFalse), HaveField("Reason", vkv1.ReasonRolloutDegraded),
			HaveField("Message", And(ContainSubstring("2 of 3 devices run it"), ContainSubstring("1 failed (fw-3: application "+app+" reports Error")))))
		Expect(f.phase(ctx, "agent-v1")()).To(Equal(corev1.PodRunning))
		Expect(f.ready(ctx, "agent-v1")()).To(BeFalse(), "not every device runs it")
		Eventually(f.events(ctx, "agent-v1"), 10*time.Second).Should(ContainElements(
			ContainSubstring(vkv1.EventFleetTemplateUpdated+": Wrote application "+app),
			And(ContainSubstring(vkv1.EventFleetDeviceFailed+": Device fw-3:"), ContainSubstring("reports Error"))))
		for _, d := range []string{"fw-1", "fw-2", "fw-3"} {
			Expect(f.apps(d)).To(ConsistOf("user-app", app), "Flightctl rendered the template onto %s", d)
		}
		Expect(f.apps("device-1")).To(BeEmpty(), "devices outside the Fleet are untouched")

		By("a per-device pod on the Fleet's node is turned away with a reason")
		Expect(k8sClient.Create(ctx, f.pod("single", "100m", "64Mi"))).To(Succeed())
		Eventually(f.waiting(ctx, "single"), 10*time.Second).Should(HavePrefix(vkv1.ReasonPerDeviceOnFleetNode + ": "))
		Eventually(f.events(ctx, "single"), 10*time.Second).Should(ContainElement(And(
			ContainSubstring(vkv1.ReasonPerDeviceOnFleetNode), ContainSubstring("stands for Flightctl Fleet rollout-fleet"))))
		Expect(f.template(ctx)).To(HaveLen(2), "nothing written for it")

		By("the DaemonSet's next pod rewrites the same application: a new template version")
		Expect(k8sClient.Create(ctx, f.pod("agent-v2", "100m", "64Mi", ownedBy(ds, "nginx:1.27")))).To(Succeed())
		Eventually(func() map[string]flightctl.ApplicationSpec { return f.template(ctx) }, 20*time.Second).Should(And(
			HaveLen(2), HaveKeyWithValue(app, containsImage("docker.io/library/nginx:1.27"))))
		Eventually(f.rollout(ctx, "agent-v2"), 30*time.Second).Should(HaveField("Message", ContainSubstring("2 of 3 devices run it")))
		Eventually(func() string { return f.appSpec("fw-1", app) }, 10*time.Second).Should(ContainSubstring("nginx:1.27"))

		By("deleting the old pod leaves the template alone: the new pod carries the application")
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "agent-v1"))).To(Succeed())
		Eventually(func() bool { return f.getPod(ctx, "agent-v1") == nil }, 20*time.Second).Should(BeTrue())
		Expect(f.template(ctx)).To(HaveKeyWithValue(app, containsImage("nginx:1.27")))

		By("deleting the last pod removes the application; the pod goes once the devices dropped it")
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "agent-v2"))).To(Succeed())
		Eventually(func() map[string]flightctl.ApplicationSpec { return f.template(ctx) }, 20*time.Second).Should(And(
			HaveLen(1), HaveKey("user-app")))
		Eventually(func() bool { return f.getPod(ctx, "agent-v2") == nil }, 30*time.Second).Should(BeTrue())
		for _, d := range []string{"fw-1", "fw-2", "fw-3"} {
			Expect(f.apps(d)).To(ConsistOf("user-app"), "the application left %s before its pod went", d)
		}
	})

	It("are Ready when every device of the Fleet runs them", func() {
		opts := fleetSim()
		opts.Config.Devices[len(opts.Config.Devices)-1].FailApplications = false
		f := newFixture(ctx, opts, fleetWideBinding)
		Expect(k8sClient.Create(ctx, f.pod("annotated", "100m", "64Mi", func(p *corev1.Pod) {
			p.Annotations = map[string]string{vkv1.AnnotationFleetWide: "true"}
		}))).To(Succeed())
		Eventually(f.ready(ctx, "annotated"), 30*time.Second).Should(BeTrue())
		Expect(f.rollout(ctx, "annotated")()).To(And(HaveField("Status", corev1.ConditionTrue),
			HaveField("Reason", vkv1.ReasonRolloutComplete), HaveField("Message", Equal("3 of 3 devices run it"))))

		By("requests count once per device: a pod that does not fit beside it on every device waits")
		Expect(k8sClient.Create(ctx, f.pod("too-big", "1700m", "64Mi", func(p *corev1.Pod) {
			p.Annotations = map[string]string{vkv1.AnnotationFleetWide: "true"}
		}))).To(Succeed())
		Eventually(f.waiting(ctx, "too-big"), 10*time.Second).Should(And(HavePrefix(vkv1.ReasonWaitingForDevice+": "),
			ContainSubstring("has 1750m cpu allocatable, 100m of it requested by other fleet-wide pods; this pod requests 1700m on every device")))
		Eventually(f.events(ctx, "too-big"), 10*time.Second).Should(ContainElement(HavePrefix(vkv1.EventFailedScheduling + ": Insufficient resources on the Fleet's devices")))
		Expect(f.template(ctx)).To(HaveLen(2), "user-app and the first pod's application only")

		By("deleting the binding takes its applications out of the Fleet's template")
		Expect(k8sClient.Delete(ctx, f.binding)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &vkv1.FleetBinding{}))
		}, 30*time.Second).Should(BeTrue())
		Expect(f.template(ctx)).To(And(HaveLen(1), HaveKey("user-app")))
	})

	It("follow the rollout policy the binding sets, batch by batch", func() {
		opts := fleetSim()
		opts.Config.Devices[len(opts.Config.Devices)-1].FailApplications = false
		opts.Agent = flightctlsim.AgentDelays{Fetch: 100 * time.Millisecond, Preparing: 300 * time.Millisecond, Starting: 100 * time.Millisecond}
		f := newFixture(ctx, opts, func(b *vkv1.FleetBinding) {
			fleetWideBinding(b)
			b.Spec.RolloutPolicy = &vkv1.RolloutPolicy{Batches: []vkv1.RolloutBatch{{Limit: "1"}}, SuccessThreshold: "100%"}
		})
		ds := f.daemonSet(ctx, "batched")
		Expect(k8sClient.Create(ctx, f.pod("batched-v1", "100m", "64Mi", ownedBy(ds, "nginx:1.26")))).To(Succeed())
		Eventually(f.rollout(ctx, "batched-v1"), 30*time.Second).Should(HaveField("Message", "3 of 3 devices run it"))

		c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
		Expect(err).NotTo(HaveOccurred())
		fl, err := c.GetFleet(ctx, "rollout-fleet")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(fl.Spec.RolloutPolicy)).To(Equal(`{"deviceSelection":{"strategy":"BatchSequence","sequence":[{"limit":1}]},"successThreshold":"100%"}`))

		By("an image update goes out as a new template version, one batch after the other")
		dispatched := func() int {
			n := 0
			for _, e := range f.sim.Events() {
				if e.InvolvedObject.Kind == "Fleet" && e.Reason == "FleetRolloutBatchDispatched" {
					n++
				}
			}
			return n
		}
		before := dispatched()
		Expect(k8sClient.Create(ctx, f.pod("batched-v2", "100m", "64Mi", ownedBy(ds, "nginx:1.27")))).To(Succeed())
		Eventually(f.rollout(ctx, "batched-v2"), 30*time.Second).Should(HaveField("Message", "3 of 3 devices run it"))
		Expect(dispatched()-before).To(Equal(2), "a batch of one device, then the other two")
	})

	It("are turned away from a per-device node", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("everywhere", "100m", "64Mi", func(p *corev1.Pod) {
			p.Annotations = map[string]string{vkv1.AnnotationFleetWide: "true"}
		}))).To(Succeed())
		Eventually(f.waiting(ctx, "everywhere"), 10*time.Second).Should(HavePrefix(vkv1.ReasonFleetWideWithoutFleet + ": "))
		Eventually(f.events(ctx, "everywhere"), 10*time.Second).Should(ContainElement(And(
			ContainSubstring(vkv1.ReasonFleetWideWithoutFleet), ContainSubstring("has no spec.flightctlFleet"))))
		Expect(f.allApps()).To(BeEmpty())
	})
})
