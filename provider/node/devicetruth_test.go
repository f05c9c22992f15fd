package node_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// What the device knows reaches the pod (issue 14): the real provider
// against the simulator over HTTP, pods read back from the API server with
// the suite's non-caching client. The simulator's ":fail-prepare" tag
// makes its agent fail the prepare and roll back, with the v1.2 agent's
// condition and messages.

// deviceUpdate is the pod's vk.flightctl.io/DeviceUpdate condition, or a
// zero condition.
func (f *fixture) deviceUpdate(ctx context.Context, name string) func() corev1.PodCondition {
	return func() corev1.PodCondition {
		p := f.getPod(ctx, name)
		if p == nil {
			return corev1.PodCondition{}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == vkv1.PodConditionDeviceUpdate {
				return c
			}
		}
		return corev1.PodCondition{}
	}
}

// waiting is the first container's waiting reason and message.
func (f *fixture) waiting(ctx context.Context, name string) func() string {
	return func() string {
		p := f.getPod(ctx, name)
		if p == nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return ""
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w.Reason + ": " + w.Message
	}
}

// countEvents counts the pod's events with the reason.
func countEvents(events []string, reason string) int {
	n := 0
	for _, e := range events {
		if strings.HasPrefix(e, reason+": ") {
			n++
		}
	}
	return n
}

var _ = Describe("Device truth", func() {
	ctx := context.Background()

	It("shows a failed prepare with rollback as ErrImagePull with the agent's message, a DeviceUpdate condition and one UpdateFailed event", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("bad-image", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "quay.io/acme/web:fail-prepare"
		}))).To(Succeed())
		Eventually(f.waiting(ctx, "bad-image"), 30*time.Second).Should(And(
			HavePrefix(translate.ReasonErrImagePull+": "),
			ContainSubstring("While Preparing: prefetch failed for "),
		))
		Expect(f.phase(ctx, "bad-image")()).To(Equal(corev1.PodPending))
		c := f.deviceUpdate(ctx, "bad-image")()
		Expect(c.Status).To(Equal(corev1.ConditionFalse))
		Expect(c.Reason).To(Equal(vkv1.EventUpdateFailed))
		Expect(c.Message).To(ContainSubstring("prefetch failed"))
		Eventually(func() int { return countEvents(f.events(ctx, "bad-image")(), vkv1.EventUpdateFailed) }, 10*time.Second).Should(Equal(1))
		// Polls every second keep seeing the failure: still one event.
		Consistently(func() int { return countEvents(f.events(ctx, "bad-image")(), vkv1.EventUpdateFailed) }, 4*time.Second).Should(Equal(1))

		// The device really rolled back: its applied version is behind
		// the rendered one and its Updating condition says Error.
		p := f.getPod(ctx, "bad-image")
		snap, _ := f.sim.GetDevice(p.Annotations[vkv1.AnnotationDevice])
		Expect(snap.Status.Updated.Status).To(Equal("OutOfDate"))
		Expect(snap.Status.Updated.Info).To(ContainSubstring("While Preparing: prefetch failed"))
	})

	It("keeps a running pod's old containers running when its update fails, and clears the failure after a good update", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("upd", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "quay.io/acme/web:1"
		}))).To(Succeed())
		Eventually(f.ready(ctx, "upd"), 30*time.Second).Should(BeTrue())

		p := f.getPod(ctx, "upd")
		p.Spec.Containers[0].Image = "quay.io/acme/web:fail-prepare"
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Eventually(func() corev1.ConditionStatus { return f.deviceUpdate(ctx, "upd")().Status }, 30*time.Second).Should(Equal(corev1.ConditionFalse))
		p = f.getPod(ctx, "upd")
		Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		Expect(p.Status.ContainerStatuses[0].State.Running).NotTo(BeNil(), "the old version still runs on the device")
		Expect(f.deviceUpdate(ctx, "upd")().Message).To(ContainSubstring("prefetch failed"))
		Eventually(func() int { return countEvents(f.events(ctx, "upd")(), vkv1.EventUpdateFailed) }, 10*time.Second).Should(Equal(1))

		p.Spec.Containers[0].Image = "quay.io/acme/web:2"
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Eventually(func() corev1.ConditionStatus { return f.deviceUpdate(ctx, "upd")().Status }, 30*time.Second).Should(BeEmpty())
		Eventually(f.ready(ctx, "upd"), 30*time.Second).Should(BeTrue())
	})

	It("counts a crashing application's restarts and shows CrashLoopBackOff with lastState and BackOff events", func() {
		f := newFixture(ctx, flightctlsim.Options{Agent: flightctlsim.AgentDelays{CrashLoop: 1500 * time.Millisecond}}, nil)
		Expect(k8sClient.Create(ctx, f.pod("crasher", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "quay.io/acme/web:crashloop"
		}))).To(Succeed())
		Eventually(func() int32 {
			p := f.getPod(ctx, "crasher")
			if p == nil || len(p.Status.ContainerStatuses) == 0 {
				return 0
			}
			return p.Status.ContainerStatuses[0].RestartCount
		}, 30*time.Second).Should(BeNumerically(">=", 2))
		Expect(f.waiting(ctx, "crasher")()).To(HavePrefix(translate.ReasonCrashLoopBackOff + ": back-off restarting failed container"))
		cs := f.getPod(ctx, "crasher").Status.ContainerStatuses[0]
		Expect(cs.LastTerminationState.Terminated).NotTo(BeNil())
		Expect(cs.LastTerminationState.Terminated.ExitCode).To(Equal(int32(1)))
		Eventually(func() int { return countEvents(f.events(ctx, "crasher")(), "BackOff") }, 10*time.Second).Should(BeNumerically(">=", 2))
	})

	It("turns a completed application into a Succeeded pod under restartPolicy Never", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("job", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Spec.Containers[0].Image = "quay.io/acme/batch:complete"
		}))).To(Succeed())
		Eventually(f.phase(ctx, "job"), 30*time.Second).Should(Equal(corev1.PodSucceeded))
		term := f.getPod(ctx, "job").Status.ContainerStatuses[0].State.Terminated
		Expect(term).NotTo(BeNil())
		Expect(term.ExitCode).To(BeZero())
		Expect(term.Reason).To(Equal(translate.ReasonCompleted))
	})

	It("gives a pod stuck in Preparing past spec.deployDeadline a DeployDeadlineExceeded reason naming the last report, and keeps it", func() {
		// The simulated agent never finishes preparing an image tagged
		// ":stuck-preparing".
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.DeployDeadline = &metav1.Duration{Duration: 5 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("stuck", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "quay.io/acme/web:stuck-preparing"
		}))).To(Succeed())
		Eventually(f.waiting(ctx, "stuck"), 10*time.Second).Should(HavePrefix(translate.ReasonContainerCreating+": preparing"), func() string {
			p := f.getPod(ctx, "stuck")
			snap, _ := f.sim.GetDevice(p.Annotations[vkv1.AnnotationDevice])
			return fmt.Sprintf("device status %+v annotations %v", snap.Status, snap.Annotations)
		})
		Eventually(f.waiting(ctx, "stuck"), 20*time.Second).Should(And(
			HavePrefix(translate.ReasonDeployDeadlineExceeded+": "),
			ContainSubstring("within the deploy deadline (5s)"),
			ContainSubstring("preparing: pulling images on the device"),
		))
		Expect(f.phase(ctx, "stuck")()).To(Equal(corev1.PodPending), "not failed: the user decides")
		Eventually(func() int { return countEvents(f.events(ctx, "stuck")(), translate.ReasonDeployDeadlineExceeded) }, 10*time.Second).Should(Equal(1))
		Consistently(func() int { return countEvents(f.events(ctx, "stuck")(), translate.ReasonDeployDeadlineExceeded) }, 3*time.Second).Should(Equal(1))
	})

	It("refuses a deployDeadline outside 5s..168h", func() {
		b := &vkv1.FleetBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bad-deadline"},
			Spec: vkv1.FleetBindingSpec{
				Fleet:          "x",
				Flightctl:      vkv1.FlightctlConnection{CredentialsSecretRef: corev1.LocalObjectReference{Name: "c"}},
				DeployDeadline: &metav1.Duration{Duration: time.Second},
			},
		}
		err := k8sClient.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("deployDeadline must be at least 5s"))
	})
})
