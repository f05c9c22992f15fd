package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var fixtureCount int

// fixture is one binding on its own simulator and namespace.
type fixture struct {
	ns      string
	sim     *flightctlsim.Sim
	binding *vkv1.FleetBinding
	node    string
}

func newFixture(ctx context.Context, simOpts flightctlsim.Options, mutate func(*vkv1.FleetBinding)) *fixture {
	return newFixtureWithCredentials(ctx, simOpts, nil, mutate)
}

// newFixtureWithCredentials is newFixture with the credentials Secret's
// data made by creds from the simulator (nil: its URL and static token).
func newFixtureWithCredentials(ctx context.Context, simOpts flightctlsim.Options, creds func(*flightctlsim.Sim) map[string]string, mutate func(*vkv1.FleetBinding)) *fixture {
	fixtureCount++
	f := &fixture{ns: fmt.Sprintf("node-%d", fixtureCount)}
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "default"}})).To(Succeed())
	if simOpts.Config == nil {
		simOpts.Config = flightctlsim.DefaultConfig()
	}
	f.sim = flightctlsim.New(simOpts)
	Expect(f.sim.Start()).To(Succeed())
	DeferCleanup(f.sim.Close)
	Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "flightctl-credentials"},
		StringData: secretData(f.sim, creds)})).To(Succeed())
	f.binding = &vkv1.FleetBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "edge"},
		Spec: vkv1.FleetBindingSpec{
			Fleet:              f.ns,
			DeviceSelector:     "fleet=edge-fleet-1",
			Flightctl:          vkv1.FlightctlConnection{CredentialsSecretRef: corev1.LocalObjectReference{Name: "flightctl-credentials"}},
			StatusPollInterval: &metav1.Duration{Duration: time.Second},
		},
	}
	if mutate != nil {
		mutate(f.binding)
	}
	Expect(k8sClient.Create(ctx, f.binding)).To(Succeed())
	f.node = f.binding.EffectiveNodeName()
	DeferCleanup(func() {
		_ = k8sClient.Delete(context.Background(), f.binding)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(f.binding), &vkv1.FleetBinding{}))
		}, 60*time.Second).Should(BeTrue(), "binding not cleaned up")
	})
	Eventually(func() bool { return nodeReady(ctx, f.node) }, 60*time.Second).Should(BeTrue(), "node %s never became Ready", f.node)
	return f
}

func secretData(sim *flightctlsim.Sim, creds func(*flightctlsim.Sim) map[string]string) map[string]string {
	if creds == nil {
		return map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}
	}
	return creds(sim)
}

func nodeReady(ctx context.Context, name string) bool {
	var n corev1.Node
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *fixture) pod(name, cpu, mem string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	no := false
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: corev1.PodSpec{
			NodeName:                     f.node,
			AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{
				Name: "app", Image: "nginx:alpine",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}},
			}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func (f *fixture) getPod(ctx context.Context, name string) *corev1.Pod {
	var p corev1.Pod
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, &p); err != nil {
		return nil
	}
	return &p
}

func (f *fixture) phase(ctx context.Context, name string) func() corev1.PodPhase {
	return func() corev1.PodPhase {
		p := f.getPod(ctx, name)
		if p == nil {
			return ""
		}
		return p.Status.Phase
	}
}

func (f *fixture) ready(ctx context.Context, name string) func() bool {
	return func() bool {
		p := f.getPod(ctx, name)
		return p != nil && podIsReady(p)
	}
}

// apps lists the application names in a device's spec on the simulator.
func (f *fixture) apps(device string) []string {
	snap, ok := f.sim.GetDevice(device)
	Expect(ok).To(BeTrue(), "device %s not in simulator", device)
	var spec struct {
		Applications []struct {
			Name string `json:"name"`
		} `json:"applications"`
	}
	Expect(json.Unmarshal(snap.Spec, &spec)).To(Succeed())
	names := []string{}
	for _, a := range spec.Applications {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	return names
}

func (f *fixture) allApps() []string {
	var out []string
	for _, d := range f.sim.DeviceNames() {
		out = append(out, f.apps(d)...)
	}
	sort.Strings(out)
	return out
}

func (f *fixture) appSpec(device, app string) string {
	snap, _ := f.sim.GetDevice(device)
	var spec struct {
		Applications []json.RawMessage `json:"applications"`
	}
	Expect(json.Unmarshal(snap.Spec, &spec)).To(Succeed())
	for _, a := range spec.Applications {
		if strings.Contains(string(a), `"`+app+`"`) {
			return string(a)
		}
	}
	return ""
}

func (f *fixture) events(ctx context.Context, pod string) func() []string {
	return func() []string {
		list, err := kube.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", pod).String()})
		if err != nil {
			return nil
		}
		var out []string
		for _, e := range list.Items {
			out = append(out, e.Reason+": "+e.Message)
		}
		return out
	}
}

func (f *fixture) writes() int64 {
	s := f.sim.Stats()
	return s.Requests["replaceDevice"] + s.Requests["patchDevice"]
}

var _ = Describe("Virtual node", func() {
	ctx := context.Background()

	It("registers a node with the fleet's summed capacity, labels and lease", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.NodeLabels = map[string]string{"site": "lab", vkv1.LabelFleet: "cannot-override"}
			b.Spec.NodeTaints = []corev1.Taint{{Key: "edge", Value: "true", Effect: corev1.TaintEffectPreferNoSchedule}}
		})
		var n corev1.Node
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n)).To(Succeed())
		Expect(n.Labels).To(HaveKeyWithValue(vkv1.LabelFleet, f.ns))
		Expect(n.Labels).To(HaveKeyWithValue("type", "virtual-kubelet"))
		Expect(n.Labels).To(HaveKeyWithValue("kubernetes.io/role", "agent"))
		Expect(n.Labels).To(HaveKeyWithValue("kubernetes.io/os", "linux"))
		Expect(n.Labels).To(HaveKeyWithValue("kubernetes.io/arch", "amd64"))
		Expect(n.Labels).To(HaveKeyWithValue("site", "lab"))
		Expect(n.Status.NodeInfo.KubeletVersion).To(HavePrefix("v1.37."))
		Expect(n.Status.NodeInfo.KubeletVersion).To(HaveSuffix("-vk-flightctl"))
		Expect(n.Status.Capacity.Cpu().String()).To(Equal("8"))
		Expect(n.Status.Capacity.Memory().String()).To(Equal("16Gi"))
		Expect(n.Status.Capacity.Pods().String()).To(Equal("110"))
		Expect(n.Status.Allocatable.Cpu().String()).To(Equal("7500m"))
		Expect(n.Status.Allocatable.Memory().String()).To(Equal("15Gi"))
		Eventually(func() []corev1.Taint {
			_ = k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n)
			return n.Spec.Taints
		}, 20*time.Second).Should(ContainElement(HaveField("Key", "edge")))
		// virtual-kubelet's lease controller creates the lease on its own
		// after the node registered: the node can be Ready first.
		var lease *coordinationv1.Lease
		Eventually(func() error {
			var err error
			lease, err = kube.CoordinationV1().Leases("kube-node-lease").Get(ctx, f.node, metav1.GetOptions{})
			return err
		}, 20*time.Second).Should(Succeed())
		Expect(lease.Spec.RenewTime).NotTo(BeNil())

		var b vkv1.FleetBinding
		Eventually(func() string {
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b)
			for _, c := range b.Status.Conditions {
				if c.Type == vkv1.ConditionReady {
					return string(c.Status) + "/" + c.Reason
				}
			}
			return ""
		}, 30*time.Second).Should(Equal("True/" + vkv1.ReasonReady))
		Expect(b.Status.Devices).To(Equal(&vkv1.DeviceSummary{Total: 2, Online: 2}))
	})

	It("runs a pod on a device with events, the device IP and a placement record", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("nginx-edge", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "nginx-edge"), 30*time.Second).Should(BeTrue())
		p := f.getPod(ctx, "nginx-edge")
		Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		device := p.Annotations[vkv1.AnnotationDevice]
		Expect(device).To(BeElementOf("device-1", "device-2"))
		Expect(p.Labels).To(HaveKeyWithValue(vkv1.LabelDevice, device))
		snap, _ := f.sim.GetDevice(device)
		// The device reports its address with a prefix length, as the
		// real agent does; the pod shows the bare address.
		Expect(snap.Status.SystemInfo["netIpDefault"]).To(HaveSuffix("/24"))
		Expect(p.Status.PodIP + "/24").To(Equal(snap.Status.SystemInfo["netIpDefault"]))
		Expect(p.Status.HostIP).To(Equal(p.Status.PodIP))
		Expect(f.apps(device)).To(ConsistOf(translate.AppName(p)))
		Eventually(f.events(ctx, "nginx-edge"), 10*time.Second).Should(ContainElements(
			ContainSubstring(`Pulling: Pulling image "nginx:alpine"`),
			ContainSubstring("Pulled:"),
			ContainSubstring("Created: Created container app"),
			ContainSubstring("Started: Started container app"),
		))
	})

	It("spreads three pods over two devices", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		for i := 0; i < 3; i++ {
			Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("hello-%d", i), "50m", "64Mi"))).To(Succeed())
		}
		devices := map[string]int{}
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("hello-%d", i)
			Eventually(f.ready(ctx, name), 30*time.Second).Should(BeTrue())
			devices[f.getPod(ctx, name).Annotations[vkv1.AnnotationDevice]]++
		}
		Expect(devices).To(HaveLen(2))
		Expect(devices).To(ContainElements(1, 2))
	})

	It("fails a pod larger than any device with a clear event and sends nothing to Flightctl", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		before := f.writes()
		Expect(k8sClient.Create(ctx, f.pod("resource-hog", "100", "1000Gi"))).To(Succeed())
		Eventually(f.phase(ctx, "resource-hog"), 20*time.Second).Should(Equal(corev1.PodFailed))
		Eventually(f.events(ctx, "resource-hog"), 10*time.Second).Should(ContainElement(
			HavePrefix("FailedScheduling: Insufficient resources: requested cpu=100, memory=1000Gi; available cpu=7500m, memory=15Gi")))
		Expect(f.writes()).To(Equal(before))
		Expect(f.allApps()).To(BeEmpty())
		By("a failed pod can be deleted")
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "resource-hog"))).To(Succeed())
		Eventually(func() *corev1.Pod { return f.getPod(ctx, "resource-hog") }, 15*time.Second).Should(BeNil())
	})

	It("keeps a pod that fits the fleet but no device right now Pending, and places it when room appears", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		// 3 CPUs each: one per device, so a third must wait.
		Expect(k8sClient.Create(ctx, f.pod("big-0", "3", "1Gi"))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("big-1", "3", "1Gi"))).To(Succeed())
		Eventually(f.ready(ctx, "big-0"), 30*time.Second).Should(BeTrue())
		Eventually(f.ready(ctx, "big-1"), 30*time.Second).Should(BeTrue())
		Expect(k8sClient.Create(ctx, f.pod("big-2", "3", "1Gi"))).To(Succeed())
		Eventually(f.events(ctx, "big-2"), 20*time.Second).Should(ContainElement(ContainSubstring("stays Pending")))
		Consistently(f.phase(ctx, "big-2"), 3*time.Second).Should(Equal(corev1.PodPending))
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "big-0"))).To(Succeed())
		Eventually(f.ready(ctx, "big-2"), 30*time.Second).Should(BeTrue())
	})

	It("updates a pod's image by simple replace", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("update-test", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "gcr.io/google-samples/hello-app:1.0"
		}))).To(Succeed())
		Eventually(f.ready(ctx, "update-test"), 30*time.Second).Should(BeTrue())
		p := f.getPod(ctx, "update-test")
		device, app := p.Annotations[vkv1.AnnotationDevice], translate.AppName(p)
		Expect(f.appSpec(device, app)).To(ContainSubstring("hello-app:1.0"))

		p.Spec.Containers[0].Image = "gcr.io/google-samples/hello-app:2.0"
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Eventually(func() string { return f.appSpec(device, app) }, 20*time.Second).Should(ContainSubstring("hello-app:2.0"))
		Expect(f.apps(device)).To(ConsistOf(app), "the new workload replaces the old one under the same name")
		Eventually(func() string {
			p := f.getPod(ctx, "update-test")
			if p == nil || len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready {
				return ""
			}
			return p.Status.ContainerStatuses[0].Image
		}, 30*time.Second).Should(Equal("gcr.io/google-samples/hello-app:2.0"))
	})

	It("removes the application when the pod is deleted, and the pod goes away quickly", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("nginx-edge", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "nginx-edge"), 30*time.Second).Should(BeTrue())
		device := f.getPod(ctx, "nginx-edge").Annotations[vkv1.AnnotationDevice]
		Expect(f.apps(device)).To(HaveLen(1))
		start := time.Now()
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "nginx-edge"))).To(Succeed())
		Eventually(func() []string { return f.apps(device) }, 10*time.Second).Should(BeEmpty())
		Eventually(func() *corev1.Pod { return f.getPod(ctx, "nginx-edge") }, 10*time.Second).Should(BeNil())
		GinkgoWriter.Printf("pod gone %s after the delete request\n", time.Since(start))
		Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second))
	})

	It("fails a pod using a field devices cannot honour, naming the field", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("hostpath", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}
		}))).To(Succeed())
		Eventually(f.phase(ctx, "hostpath"), 20*time.Second).Should(Equal(corev1.PodFailed))
		Expect(f.getPod(ctx, "hostpath").Status.Reason).To(Equal("UnsupportedPodSpec"))
		Eventually(f.events(ctx, "hostpath"), 10*time.Second).Should(ContainElement(
			And(HavePrefix("UnsupportedPodSpec:"), ContainSubstring("hostPath"))))
		Expect(f.allApps()).To(BeEmpty())
	})

	It("never places a pod on a device owned by a Flightctl fleet", func() {
		cfg := flightctlsim.DefaultConfig()
		cfg.Fleets = append(cfg.Fleets, flightctlsim.FleetConfig{Name: "owned-fleet", Selector: map[string]string{"owned": "yes"}})
		cfg.Devices = append(cfg.Devices, flightctlsim.DeviceConfig{Name: "device-3", Labels: map[string]string{"fleet": "edge-fleet-1"},
			CPU: 4, Memory: "8Gi", IP: "192.0.2.13", OwnedBy: "owned-fleet"})
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, nil)
		Expect(k8sClient.Create(ctx, f.pod("on-owned", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{vkv1.LabelDeviceID: "device-3"}
		}))).To(Succeed())
		Eventually(f.phase(ctx, "on-owned"), 20*time.Second).Should(Equal(corev1.PodFailed))
		Eventually(f.events(ctx, "on-owned"), 10*time.Second).Should(ContainElement(And(ContainSubstring("device-3 (fleet owned-fleet)"), ContainSubstring("no fleet owns"))))
		Expect(f.apps("device-3")).To(BeEmpty())
		var b vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b)).To(Succeed())
		Expect(b.Status.UnusableDevices).To(ContainElement(HaveField("Name", "device-3")))
	})

	It("retries a write that meets a 409 conflict without losing it", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(f.sim.SetFaults(flightctlsim.Faults{ConflictCount: 3})).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("conflicted", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "conflicted"), 30*time.Second).Should(BeTrue())
		Expect(f.sim.Stats().InjectedConflicts).To(BeNumerically(">=", 1))
		Expect(f.allApps()).To(ConsistOf(translate.AppName(f.getPod(ctx, "conflicted"))))
	})

	It("keeps a pod on the device that holds its workload when the manager stopped before the pod's first status write", func() {
		cfg := &flightctlsim.Config{Devices: []flightctlsim.DeviceConfig{
			{Name: "device-a", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"},
			{Name: "device-b", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"},
		}}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, nil)
		Eventually(func() bool { return nodeReady(ctx, f.node) }, 30*time.Second).Should(BeTrue())

		// The state such a manager leaves: the pod bound, with no device
		// record and no status, and its application on device-b, which
		// placement (equal devices, spread, then name order) would not pick.
		mgr.stop()
		Expect(k8sClient.Create(ctx, f.pod("early", "100m", "128Mi"))).To(Succeed())
		early := f.getPod(ctx, "early")
		Expect(early.Annotations).NotTo(HaveKey(vkv1.AnnotationDevice))
		res, err := translate.ToApplication(early, translate.Options{DeviceName: "device-b"})
		Expect(err).NotTo(HaveOccurred())
		c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
		Expect(err).NotTo(HaveOccurred())
		w := devicewriter.New(c, translate.IsOwnedAppName, logr.Discard())
		_, err = w.Apply(ctx, "device-b", devicewriter.Change{Name: translate.AppName(early), App: &res.Application})
		Expect(err).NotTo(HaveOccurred())
		mgr = startManager()

		Eventually(f.ready(ctx, "early"), 60*time.Second).Should(BeTrue())
		Expect(f.placedOn(ctx, "early")()).To(Equal("device-b"))
		Expect(f.getPod(ctx, "early").Labels).To(HaveKeyWithValue(vkv1.LabelDevice, "device-b"))
		// Held across a few orphan sweeps: one copy, where it was.
		Consistently(f.allApps, 7*time.Second, time.Second).Should(Equal([]string{translate.AppName(early)}))
		Expect(f.apps("device-b")).To(Equal([]string{translate.AppName(early)}))
	})

	It("survives a manager restart without placing anything twice or losing anything", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		for i := 0; i < 4; i++ {
			Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("keep-%d", i), "100m", "128Mi"))).To(Succeed())
		}
		placed := map[string]string{}
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("keep-%d", i)
			Eventually(f.ready(ctx, name), 30*time.Second).Should(BeTrue())
			placed[name] = f.getPod(ctx, name).Annotations[vkv1.AnnotationDevice]
		}
		appsBefore := f.allApps()

		mgr.stop()
		// Changes while the manager is down: one pod deleted, one created.
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "keep-0"))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("late", "100m", "128Mi"))).To(Succeed())
		mgr = startManager()

		Eventually(f.ready(ctx, "late"), 60*time.Second).Should(BeTrue())
		Eventually(func() *corev1.Pod { return f.getPod(ctx, "keep-0") }, 60*time.Second).Should(BeNil())
		for i := 1; i < 4; i++ {
			name := fmt.Sprintf("keep-%d", i)
			Expect(f.getPod(ctx, name).Annotations[vkv1.AnnotationDevice]).To(Equal(placed[name]), "pod %s moved", name)
			Eventually(f.ready(ctx, name), 30*time.Second).Should(BeTrue())
		}
		want := []string{}
		for _, n := range []string{"keep-1", "keep-2", "keep-3", "late"} {
			want = append(want, translate.AppName(f.getPod(ctx, n)))
		}
		Eventually(f.allApps, 30*time.Second).Should(ConsistOf(want), "before restart: %v", appsBefore)
	})
})
