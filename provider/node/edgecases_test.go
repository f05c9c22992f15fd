package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// Pods at the edges of what Kubernetes accepts, run through the real API
// server, the virtual node and the Flightctl simulator. Each pod either
// runs, with its application on exactly one device carrying what the pod
// asked for, or fails with an event naming what is wrong while nothing
// reaches Flightctl. The pods of one fixture are created together and
// checked one case per spec.

// appFiles returns the inline files of an application in a device's spec
// on the simulator, by path; nil when the device does not have it.
func (f *fixture) appFiles(device, app string) map[string]string {
	snap, ok := f.sim.GetDevice(device)
	Expect(ok).To(BeTrue(), "device %s not in simulator", device)
	var spec struct {
		Applications []struct {
			Name   string `json:"name"`
			Inline []struct {
				Path    string `json:"path"`
				Content string `json:"content"`
			} `json:"inline"`
		} `json:"applications"`
	}
	Expect(json.Unmarshal(snap.Spec, &spec)).To(Succeed())
	for _, a := range spec.Applications {
		if a.Name == app {
			files := map[string]string{}
			for _, in := range a.Inline {
				files[in.Path] = in.Content
			}
			return files
		}
	}
	return nil
}

// devicesWith lists the devices whose spec holds the application.
func (f *fixture) devicesWith(app string) []string {
	out := []string{}
	for _, d := range f.sim.DeviceNames() {
		for _, a := range f.apps(d) {
			if a == app {
				out = append(out, d)
			}
		}
	}
	return out
}

// podIn reads a pod from any namespace; nil if it does not exist.
func podIn(ctx context.Context, ns, name string) *corev1.Pod {
	var p corev1.Pod
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return nil
	}
	return &p
}

// eventsIn lists "Reason: message" for a pod in any namespace.
func eventsIn(ctx context.Context, ns, name string) func() []string {
	return func() []string {
		list, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
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

// runsOnOneDevice waits for the pod to be Ready and returns its
// application's files, after checking that exactly the device recorded on
// the pod holds the application.
func (f *fixture) runsOnOneDevice(ctx context.Context, ns, name string) map[string]string {
	GinkgoHelper()
	Eventually(func() bool {
		p := podIn(ctx, ns, name)
		if p == nil || p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}, 60*time.Second).Should(BeTrue(), "pod %s/%s never became Ready; events: %v", ns, name, eventsIn(ctx, ns, name)())
	p := podIn(ctx, ns, name)
	device, app := p.Annotations[vkv1.AnnotationDevice], translate.AppName(p)
	Expect(device).NotTo(BeEmpty())
	Expect(f.devicesWith(app)).To(Equal([]string{device}), "application %s must be on exactly its pod's device", app)
	files := f.appFiles(device, app)
	Expect(files).NotTo(BeEmpty())
	return files
}

// containerUnit parses the quadlet unit of one container.
func containerUnit(files map[string]string, app, container string) *translate.Unit {
	GinkgoHelper()
	content, ok := files[app+"-"+container+".container"]
	Expect(ok).To(BeTrue(), "no unit for container %s in %v", container, keys(files))
	u, err := translate.ParseUnit(content)
	Expect(err).NotTo(HaveOccurred())
	return u
}

// values returns every value of a key in a unit's [Container] section.
func values(u *translate.Unit, key string) []string {
	out := []string{}
	for _, e := range u.Entries {
		if e.Section == "Container" && e.Key == key {
			out = append(out, e.Value)
		}
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// failsWithEvent waits for the pod to fail and for an event with the
// reason and all the message parts, and checks that no device holds its
// application.
func (f *fixture) failsWithEvent(ctx context.Context, name, reason string, parts ...string) {
	GinkgoHelper()
	Eventually(f.phase(ctx, name), 30*time.Second).Should(Equal(corev1.PodFailed), "events: %v", f.events(ctx, name)())
	matchers := []types.GomegaMatcher{HavePrefix(reason + ": ")}
	for _, p := range parts {
		matchers = append(matchers, ContainSubstring(p))
	}
	Eventually(f.events(ctx, name), 10*time.Second).Should(ContainElement(And(matchers...)))
	Expect(f.devicesWith(translate.AppName(f.getPod(ctx, name)))).To(BeEmpty())
}

// envVars is n variables of size bytes each.
func envVars(n, size int) []corev1.EnvVar {
	out := make([]corev1.EnvVar, n)
	for i := range out {
		out[i] = corev1.EnvVar{Name: fmt.Sprintf("VAR_%04d", i), Value: strings.Repeat(string(rune('a'+i%26)), size)}
	}
	return out
}

// longestPodName is a 253-character pod name, the API server's maximum.
func longestPodName() string {
	l := func(c string) string { return strings.Repeat(c, 63) }
	return l("a") + "." + l("b") + "." + l("c") + "." + strings.Repeat("d", 61)
}

var _ = Describe("Pods at the edges", func() {
	ctx := context.Background()

	It("never reach the node with names Kubernetes refuses (unicode pod names and label values)", func() {
		no := false
		base := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "vk-flightctl-unused", AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{Name: "app", Image: "nginx:alpine"}}},
		}
		p := base.DeepCopy()
		p.Name = "café-☕"
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, p))).To(BeTrue())
		p = base.DeepCopy()
		p.Name, p.Labels = "unicode-label", map[string]string{"city": "東京"}
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, p))).To(BeTrue())
		p = base.DeepCopy()
		p.Name, p.Spec.Containers[0].Name = "unicode-container", "wéb"
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, p))).To(BeTrue())
	})

	Context("that run", Ordered, ContinueOnFailure, func() {
		var f *fixture
		var longNS string

		BeforeAll(func() {
			f = newFixture(ctx, flightctlsim.Options{}, nil)
			// The longest namespace: 63 characters.
			longNS = f.ns + "-" + strings.Repeat("n", 62-len(f.ns))
			Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: longNS}})).To(Succeed())
			Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: longNS, Name: "default"}})).To(Succeed())

			long := f.pod(longestPodName(), "50m", "64Mi")
			long.Namespace = longNS
			pods := []*corev1.Pod{
				long,
				f.pod("twenty-containers", "1m", "1Mi", func(p *corev1.Pod) {
					p.Spec.Containers = nil
					for i := 0; i < 20; i++ {
						p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
							Name: fmt.Sprintf("c%02d", i), Image: "busybox:1.36", Command: []string{"sleep", "infinity"}})
					}
				}),
				f.pod("thousand-env", "50m", "64Mi", func(p *corev1.Pod) { p.Spec.Containers[0].Env = envVars(1000, 20) }),
				// 100 KiB of environment in values a quadlet line can hold.
				f.pod("env-100kib", "50m", "64Mi", func(p *corev1.Pod) { p.Spec.Containers[0].Env = envVars(64, 1600) }),
				f.pod("unicode", "50m", "64Mi", func(p *corev1.Pod) {
					p.Annotations = map[string]string{"greeting": "Grüße aus 東京 🚀"}
					c := &p.Spec.Containers[0]
					c.Args = []string{"Ωmega", "naïve café"}
					c.Env = []corev1.EnvVar{
						{Name: "GREETING", Value: "Grüße aus 東京 🚀"},
						{Name: "FROM_ANNOTATION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['greeting']"}}},
					}
				}),
				f.pod("no-requests", "1m", "1Mi", func(p *corev1.Pod) { p.Spec.Containers[0].Resources = corev1.ResourceRequirements{} }),
				f.pod("odd-units", "1m", "1Mi", func(p *corev1.Pod) {
					q := resource.MustParse
					p.Spec.Containers = []corev1.Container{
						// Requests default to limits; 1m is below what the
						// kernel enforces and becomes 10m, as on a kubelet.
						{Name: "tiny", Image: "busybox:1.36", Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{corev1.ResourceCPU: q("1m"), corev1.ResourceMemory: q("6Mi")}}},
						{Name: "decimal", Image: "busybox:1.36", Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: q("0.5"), corev1.ResourceMemory: q("1G")},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1e0"), corev1.ResourceMemory: q("1Gi")}}},
						// A milli-byte request only steers placement.
						{Name: "milli", Image: "busybox:1.36", Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: q("100u"), corev1.ResourceMemory: q("500m")}}},
					}
				}),
			}
			for _, p := range pods {
				Expect(k8sClient.Create(ctx, p)).To(Succeed(), "creating %s", p.Name)
			}
		})

		It("runs a pod with a 253-character name in a 63-character namespace under a valid application name", func() {
			files := f.runsOnOneDevice(ctx, longNS, longestPodName())
			p := podIn(ctx, longNS, longestPodName())
			app := translate.AppName(p)
			Expect(len(app)).To(BeNumerically("<=", 63))
			Expect(app).To(MatchRegexp(`^vk-` + f.ns + `-n+-[0-9a-f]{10}$`))
			Expect(files).To(HaveKey(app + ".pod"))
			Expect(files[app+".pod"]).To(ContainSubstring("PodmanArgs=--hostname=" + strings.Repeat("a", 63) + "\n"))
			Expect(files[app+".pod"]).To(ContainSubstring("Description=vk-flightctl pod " + longNS + "/" + longestPodName() + "\n"))
			Eventually(eventsIn(ctx, longNS, longestPodName()), 10*time.Second).Should(ContainElement(HavePrefix("Started: ")))
		})

		It("runs a pod with 20 containers as one .pod and 20 .container units, all ready", func() {
			files := f.runsOnOneDevice(ctx, f.ns, "twenty-containers")
			p := f.getPod(ctx, "twenty-containers")
			app := translate.AppName(p)
			Expect(files).To(HaveLen(21))
			for i := 0; i < 20; i++ {
				u := containerUnit(files, app, fmt.Sprintf("c%02d", i))
				Expect(values(u, "Pod")).To(Equal([]string{app + ".pod"}))
				Expect(values(u, "Image")).To(Equal([]string{"docker.io/library/busybox:1.36"}))
			}
			Expect(p.Status.ContainerStatuses).To(HaveLen(20))
			for _, cs := range p.Status.ContainerStatuses {
				Expect(cs.Ready).To(BeTrue(), "container %s", cs.Name)
			}
		})

		It("runs a pod with 1000 environment variables, every one delivered", func() {
			p := f.getPod(ctx, "thousand-env")
			files := f.runsOnOneDevice(ctx, f.ns, "thousand-env")
			env := values(containerUnit(files, translate.AppName(p), "app"), "Environment")
			Expect(env).To(HaveLen(1000))
			Expect(env[0]).To(Equal("VAR_0000=" + strings.Repeat("a", 20)))
			Expect(env[999]).To(Equal("VAR_0999=" + strings.Repeat(string(rune('a'+999%26)), 20)))
		})

		It("runs a pod with 100 KiB of environment in the quadlet format", func() {
			p := f.getPod(ctx, "env-100kib")
			files := f.runsOnOneDevice(ctx, f.ns, "env-100kib")
			env := values(containerUnit(files, translate.AppName(p), "app"), "Environment")
			total := 0
			for _, e := range env {
				total += len(e)
			}
			Expect(env).To(HaveLen(64))
			Expect(total).To(BeNumerically(">=", 100<<10))
		})

		It("runs a pod with unicode in env values, annotations (downward API) and args, byte for byte", func() {
			p := f.getPod(ctx, "unicode")
			files := f.runsOnOneDevice(ctx, f.ns, "unicode")
			u := containerUnit(files, translate.AppName(p), "app")
			Expect(values(u, "Environment")).To(Equal([]string{`"GREETING=Grüße aus 東京 🚀"`, `"FROM_ANNOTATION=Grüße aus 東京 🚀"`}))
			Expect(values(u, "Exec")).To(Equal([]string{`Ωmega "naïve café"`}))
		})

		It("runs a pod without any requests or limits, with no limit on the device", func() {
			p := f.getPod(ctx, "no-requests")
			files := f.runsOnOneDevice(ctx, f.ns, "no-requests")
			Expect(values(containerUnit(files, translate.AppName(p), "app"), "PodmanArgs")).To(Equal([]string{"--stop-timeout=30"}))
		})

		It("runs a pod whose quantities use odd units, with the limits the device can enforce", func() {
			p := f.getPod(ctx, "odd-units")
			files := f.runsOnOneDevice(ctx, f.ns, "odd-units")
			app := translate.AppName(p)
			Expect(values(containerUnit(files, app, "tiny"), "PodmanArgs")).To(ConsistOf("--cpus=0.01", "--memory=6291456", "--stop-timeout=30"))
			Expect(values(containerUnit(files, app, "decimal"), "PodmanArgs")).To(ConsistOf("--cpus=1", "--memory=1073741824", "--stop-timeout=30"))
			Expect(values(containerUnit(files, app, "milli"), "PodmanArgs")).To(ConsistOf("--stop-timeout=30"))
		})
	})

	Context("that cannot run", Ordered, ContinueOnFailure, func() {
		var f *fixture
		var writesBefore int64

		BeforeAll(func() {
			f = newFixture(ctx, flightctlsim.Options{}, nil)
			writesBefore = f.writes()
			volume := func(src corev1.VolumeSource) func(*corev1.Pod) {
				return func(p *corev1.Pod) {
					p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: src}}
					p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
				}
			}
			blob := make([]byte, 800<<10)
			for i := range blob {
				blob[i] = 0xff // not UTF-8, so it travels as base64
			}
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "blob"},
				Data: map[string][]byte{"blob.bin": blob}})).To(Succeed())
			fs := corev1.PersistentVolumeFilesystem
			pods := []*corev1.Pod{
				f.pod("vol-hostpath", "50m", "64Mi", volume(corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}})),
				f.pod("vol-pvc", "50m", "64Mi", volume(corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}})),
				f.pod("vol-nfs", "50m", "64Mi", volume(corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs.example", Path: "/export"}})),
				f.pod("vol-ephemeral", "50m", "64Mi", volume(corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
					VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeMode: &fs,
						Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}}})),
				f.pod("vol-binary-secret", "50m", "64Mi", volume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "blob"}})),
				f.pod("env-one-100kib-value", "50m", "64Mi", func(p *corev1.Pod) { p.Spec.Containers[0].Env = envVars(1, 100<<10) }),
				// About 1.2 MiB: the API server stores it, Flightctl would
				// refuse the unit file holding it.
				f.pod("env-1200kib", "50m", "64Mi", func(p *corev1.Pod) { p.Spec.Containers[0].Env = envVars(650, 1900) }),
				f.pod("env-name-digit", "50m", "64Mi", func(p *corev1.Pod) {
					p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "1ST_TRY", Value: "x"}}
				}),
				f.pod("milli-memory-limit", "50m", "500m", func(p *corev1.Pod) {
					p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("500m")}
				}),
				f.pod("cpu-1e16", "1e16", "64Mi"),
				f.pod("memory-1e19", "50m", "1e19"),
			}
			for _, p := range pods {
				Expect(k8sClient.Create(ctx, p)).To(Succeed(), "creating %s", p.Name)
			}
		})

		DescribeTable("fails an unsupported volume type, naming it",
			func(pod, field string) {
				f.failsWithEvent(ctx, pod, "UnsupportedPodSpec", field+" is not supported on Flightctl devices")
				Expect(f.getPod(ctx, pod).Status.Reason).To(Equal("UnsupportedPodSpec"))
			},
			Entry("hostPath", "vol-hostpath", "spec.volumes[0].hostPath"),
			Entry("persistentVolumeClaim", "vol-pvc", "spec.volumes[0].persistentVolumeClaim"),
			Entry("nfs", "vol-nfs", "spec.volumes[0].nfs"),
			Entry("generic ephemeral", "vol-ephemeral", "spec.volumes[0].ephemeral"),
		)

		It("fails a binary Secret volume file that would exceed Flightctl's 1 MiB inline limit as base64", func() {
			f.failsWithEvent(ctx, "vol-binary-secret", "UnsupportedPodSpec",
				`spec.volumes[0].secret is not supported`, `file "blob.bin" would be 1092268 bytes`, "as base64", "1048576 bytes Flightctl accepts")
		})

		It("fails one 100 KiB environment value in the quadlet format, pointing to compose", func() {
			f.failsWithEvent(ctx, "env-one-100kib-value", "UnsupportedPodSpec",
				"spec.containers[0].env[0] is not supported", "too long for a quadlet unit line", "use the compose format")
		})

		It("fails 1.2 MiB of environment that Flightctl would refuse as one unit file", func() {
			f.failsWithEvent(ctx, "env-1200kib", "UnsupportedPodSpec",
				"spec.containers[0] is not supported", "1048576 bytes Flightctl accepts in one inline file", "ConfigMap or Secret volumes")
		})

		It("fails an environment variable name Kubernetes now accepts but podman units cannot carry", func() {
			f.failsWithEvent(ctx, "env-name-digit", "UnsupportedPodSpec", `spec.containers[0].env[0].name is not supported`, `"1ST_TRY"`)
		})

		It("fails a memory limit in milli-units, saying what was probably meant", func() {
			f.failsWithEvent(ctx, "milli-memory-limit", "UnsupportedPodSpec",
				"spec.containers[0].resources.limits[memory] is not supported", "memory limit 500m is 1 byte", "write 500Mi")
		})

		It("fails requests too large for int64 arithmetic instead of placing them as free", func() {
			f.failsWithEvent(ctx, "cpu-1e16", "FailedScheduling", "Insufficient resources: requested cpu=10e15", "lower its requests")
			f.failsWithEvent(ctx, "memory-1e19", "FailedScheduling", "Insufficient resources: requested cpu=50m, memory=10e18", "lower its requests")
		})

		It("wrote nothing to Flightctl for any of them", func() {
			for _, name := range []string{"vol-hostpath", "vol-pvc", "vol-nfs", "vol-ephemeral", "vol-binary-secret",
				"env-one-100kib-value", "env-1200kib", "env-name-digit", "milli-memory-limit", "cpu-1e16", "memory-1e19"} {
				Eventually(f.phase(ctx, name), 30*time.Second).Should(Equal(corev1.PodFailed), name)
			}
			Expect(f.writes()).To(Equal(writesBefore))
			Expect(f.allApps()).To(BeEmpty())
		})
	})

	Context("in the compose format", Ordered, ContinueOnFailure, func() {
		var f *fixture

		BeforeAll(func() {
			f = newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
				b.Spec.ApplicationFormat = vkv1.ApplicationFormatCompose
			})
			Expect(k8sClient.Create(ctx, f.pod("one-100kib-value", "50m", "64Mi", func(p *corev1.Pod) {
				p.Spec.Containers[0].Env = append(envVars(1, 100<<10), corev1.EnvVar{Name: "GREETING", Value: "Grüße aus 東京 🚀"})
			}))).To(Succeed())
			Expect(k8sClient.Create(ctx, f.pod("one-200kib-value", "50m", "64Mi", func(p *corev1.Pod) {
				p.Spec.Containers[0].Env = envVars(1, 200<<10)
			}))).To(Succeed())
		})

		It("runs a pod with one 100 KiB environment value, delivered whole", func() {
			files := f.runsOnOneDevice(ctx, f.ns, "one-100kib-value")
			Expect(files).To(HaveKey("podman-compose.yaml"))
			compose := files["podman-compose.yaml"]
			Expect(compose).To(ContainSubstring(`VAR_0000: "` + strings.Repeat("a", 100<<10) + `"`))
			Expect(compose).To(ContainSubstring(`GREETING: "Grüße aus 東京 \U0001F680"`))
		})

		It("fails a 200 KiB environment value no process can receive", func() {
			f.failsWithEvent(ctx, "one-200kib-value", "UnsupportedPodSpec",
				"spec.containers[0].env[0] is not supported", "MAX_ARG_STRLEN", "ConfigMap or Secret volume")
		})
	})
})
