package controllers_test

import (
	"context"
	"fmt"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var nsCounter int

// newNamespace gives every spec its own namespace so specs cannot see each
// other's bindings and Secrets.
func newNamespace(ctx context.Context) string {
	nsCounter++
	name := fmt.Sprintf("fb-%d-%d", GinkgoParallelProcess(), nsCounter)
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

func credentials(ns, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
}

func binding(ns, name, fleet, secret string) *vkv1.FleetBinding {
	return &vkv1.FleetBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: vkv1.FleetBindingSpec{
			Fleet:     fleet,
			Flightctl: vkv1.FlightctlConnection{CredentialsSecretRef: corev1.LocalObjectReference{Name: secret}},
		},
	}
}

// condition reads a binding straight from the API server.
func condition(ctx context.Context, key client.ObjectKey, typ string) func() *metav1.Condition {
	return func() *metav1.Condition {
		var b vkv1.FleetBinding
		if err := k8sClient.Get(ctx, key, &b); err != nil {
			return nil
		}
		return meta.FindStatusCondition(b.Status.Conditions, typ)
	}
}

func haveReason(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), HaveField("Status", status), HaveField("Reason", reason))
}

// startSim starts a simulator with the built-in fleet edge-fleet-1
// (device-1 and device-2, 4 CPU and 8Gi each).
func startSim(opts flightctlsim.Options) *flightctlsim.Sim {
	if opts.Config == nil {
		opts.Config = flightctlsim.DefaultConfig()
	}
	sim := flightctlsim.New(opts)
	Expect(sim.Start()).To(Succeed())
	DeferCleanup(sim.Close)
	return sim
}

var _ = Describe("FleetBinding reconciler", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("connects, counts the fleet's devices and sums their resources", func() {
		sim := startSim(flightctlsim.Options{})
		Expect(k8sClient.Create(ctx, credentials(ns, "flightctl-credentials", map[string]string{
			"api-url": sim.URL(), "auth-token": sim.Token(),
		}))).To(Succeed())
		fb := binding(ns, "edge", "edge-fleet-1", "flightctl-credentials")
		Expect(k8sClient.Create(ctx, fb)).To(Succeed())
		key := client.ObjectKeyFromObject(fb)

		Eventually(condition(ctx, key, vkv1.ConditionFlightctlConnected), 20*time.Second).Should(haveReason(metav1.ConditionTrue, vkv1.ReasonConnected))
		var got vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, key, &got)).To(Succeed())
		Expect(got.Finalizers).To(ContainElement(vkv1.FleetBindingFinalizer))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(got.Status.NodeName).To(Equal("vk-flightctl-edge-fleet-1"))
		Expect(got.Status.Devices).To(Equal(&vkv1.DeviceSummary{Total: 2, Online: 2}))
		Expect(got.Status.Capacity.Cpu().Cmp(resource.MustParse("8"))).To(Equal(0))
		Expect(got.Status.Capacity.Memory().Cmp(resource.MustParse("16Gi"))).To(Equal(0))
		Expect(got.Status.Allocatable.Cpu().Cmp(resource.MustParse("7500m"))).To(Equal(0))
		Expect(got.Status.Allocatable.Memory().Cmp(resource.MustParse("15Gi"))).To(Equal(0))
		Expect(meta.FindStatusCondition(got.Status.Conditions, vkv1.ConditionDevicesAvailable)).To(haveReason(metav1.ConditionTrue, vkv1.ReasonDevicesOnline))
		Expect(meta.FindStatusCondition(got.Status.Conditions, vkv1.ConditionDegraded)).To(haveReason(metav1.ConditionFalse, vkv1.ReasonHealthy))
		Expect(got.Status.FlightctlURL).To(Equal(sim.URL()))

		By("deleting the binding releases the finalizer")
		Expect(k8sClient.Delete(ctx, fb)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, key, &vkv1.FleetBinding{}))
		}, 20*time.Second).Should(BeTrue())
	})

	DescribeTable("reports a misconfigured binding with a reason a person can act on",
		func(secret map[string]string, mutate func(*vkv1.FleetBinding), reason string, msg string) {
			sim := startSim(flightctlsim.Options{})
			if secret != nil {
				data := map[string]string{}
				for k, v := range secret {
					data[k] = expand(v, sim)
				}
				Expect(k8sClient.Create(ctx, credentials(ns, "creds", data))).To(Succeed())
			}
			fb := binding(ns, "bad", ns, "creds")
			if mutate != nil {
				mutate(fb)
			}
			Expect(k8sClient.Create(ctx, fb)).To(Succeed())
			key := client.ObjectKeyFromObject(fb)
			Eventually(condition(ctx, key, vkv1.ConditionFlightctlConnected), 30*time.Second).Should(
				And(haveReason(metav1.ConditionFalse, reason), HaveField("Message", ContainSubstring(msg))))
			Eventually(condition(ctx, key, vkv1.ConditionReady), 10*time.Second).Should(haveReason(metav1.ConditionFalse, reason))

			var got vkv1.FleetBinding
			Expect(k8sClient.Get(ctx, key, &got)).To(Succeed())
			var events corev1.EventList
			Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
			for _, secret := range []string{sim.Token(), "wrong-token-value"} {
				for _, c := range got.Status.Conditions {
					Expect(c.Message).NotTo(ContainSubstring(secret), "a condition leaks the token")
				}
				for _, e := range events.Items {
					Expect(e.Message).NotTo(ContainSubstring(secret), "an event leaks the token")
				}
				Expect(managerLogs.String()).NotTo(ContainSubstring(secret), "the manager's log leaks the token")
			}
		},
		Entry("missing Secret", nil, nil, vkv1.ReasonSecretNotFound, "Secret"),
		Entry("Secret without api-url", map[string]string{"auth-token": "$TOKEN"}, nil, vkv1.ReasonSecretInvalid, `no "api-url" key`),
		Entry("Secret without credentials", map[string]string{"api-url": "$URL"}, nil, vkv1.ReasonSecretInvalid, `has no credentials: add a Flightctl bearer token ("auth-token")`),
		Entry("Secret with two ways to authenticate", map[string]string{"api-url": "$URL", "auth-token": "$TOKEN", "oauth-client-id": "c", "oauth-client-secret": "s", "oauth-token-url": "https://idp.example.com/token"},
			nil, vkv1.ReasonSecretInvalid, "select different ways to authenticate; keep one"),
		Entry("client credentials without a token endpoint", map[string]string{"api-url": "$URL", "oauth-client-id": "c", "oauth-client-secret": "s"},
			nil, vkv1.ReasonSecretInvalid, `need exactly one of "oauth-token-url"`),
		Entry("malformed URL", map[string]string{"api-url": "flightctl.example.com", "auth-token": "$TOKEN"}, nil, vkv1.ReasonInvalidURL, "is not an http(s) URL"),
		Entry("CA that is not PEM", map[string]string{"api-url": "$URL", "auth-token": "$TOKEN", "ca.crt": "not a certificate"}, nil, vkv1.ReasonInvalidCA, "no PEM certificate"),
		Entry("wrong token", map[string]string{"api-url": "$URL", "auth-token": "wrong-token-value"}, nil, vkv1.ReasonUnauthorized, "refused the token"),
		Entry("unreachable Flightctl", map[string]string{"api-url": "$DEADURL", "auth-token": "$TOKEN"}, nil, vkv1.ReasonFlightctlUnreachable, "cannot reach Flightctl"),
		Entry("invalid device selector", map[string]string{"api-url": "$URL", "auth-token": "$TOKEN"},
			func(b *vkv1.FleetBinding) { b.Spec.DeviceSelector = "fleet in (a" }, vkv1.ReasonInvalidSelector, "not a valid label selector"),
	)

	It("verifies TLS by default, accepts the right CA, and flags insecure mode", func() {
		sim := startSim(flightctlsim.Options{TLS: true})
		Expect(k8sClient.Create(ctx, credentials(ns, "no-ca", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}))).To(Succeed())
		Expect(k8sClient.Create(ctx, credentials(ns, "with-ca", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token(), "ca.crt": string(sim.CACertPEM())}))).To(Succeed())

		noCA := binding(ns, "no-ca", ns+"-a", "no-ca")
		withCA := binding(ns, "with-ca", ns+"-b", "with-ca")
		insecure := binding(ns, "insecure", ns+"-c", "no-ca")
		insecure.Spec.Flightctl.InsecureSkipTLSVerify = true
		for _, b := range []*vkv1.FleetBinding{noCA, withCA, insecure} {
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
		}
		Eventually(condition(ctx, client.ObjectKeyFromObject(noCA), vkv1.ConditionFlightctlConnected), 30*time.Second).Should(
			And(haveReason(metav1.ConditionFalse, vkv1.ReasonTLSVerificationFailed), HaveField("Message", ContainSubstring("ca.crt"))))
		Eventually(condition(ctx, client.ObjectKeyFromObject(withCA), vkv1.ConditionFlightctlConnected), 30*time.Second).Should(
			haveReason(metav1.ConditionTrue, vkv1.ReasonConnected))
		Eventually(condition(ctx, client.ObjectKeyFromObject(insecure), vkv1.ConditionDegraded), 30*time.Second).Should(
			And(haveReason(metav1.ConditionTrue, vkv1.ReasonInsecureTLS)))
		var got vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(insecure), &got)).To(Succeed())
		Expect(got.Status.InsecureSkipTLSVerify).To(BeTrue())
	})

	It("gives a node name to the older of two bindings that claim it", func() {
		sim := startSim(flightctlsim.Options{})
		Expect(k8sClient.Create(ctx, credentials(ns, "creds", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}))).To(Succeed())
		first := binding(ns, "first", ns, "creds")
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(condition(ctx, client.ObjectKeyFromObject(first), vkv1.ConditionFlightctlConnected), 20*time.Second).Should(
			haveReason(metav1.ConditionTrue, vkv1.ReasonConnected))
		time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision
		second := binding(ns, "second", ns+"-other", "creds")
		second.Spec.NodeName = "vk-flightctl-" + ns
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(condition(ctx, client.ObjectKeyFromObject(second), vkv1.ConditionNodeRegistered), 20*time.Second).Should(
			And(haveReason(metav1.ConditionFalse, vkv1.ReasonNodeNameConflict), HaveField("Message", ContainSubstring(ns+"/first"))))
	})

	It("reports devices owned by a Flightctl fleet as unusable", func() {
		sim := startSim(flightctlsim.Options{})
		Expect(sim.AddFleet(flightctlsim.FleetConfig{Name: "owned-fleet", Selector: map[string]string{"owned": "yes"}})).To(Succeed())
		Expect(sim.AddDevice(flightctlsim.DeviceConfig{Name: "device-3", Labels: map[string]string{"fleet": "edge-fleet-1", "owned": "yes"}, CPU: 4, Memory: "8Gi"})).To(Succeed())
		Expect(k8sClient.Create(ctx, credentials(ns, "creds", map[string]string{"api-url": sim.URL(), "auth-token": sim.Token()}))).To(Succeed())
		fb := binding(ns, "edge", ns, "creds")
		fb.Spec.DeviceSelector = "fleet=edge-fleet-1"
		Expect(k8sClient.Create(ctx, fb)).To(Succeed())
		key := client.ObjectKeyFromObject(fb)
		Eventually(func() *vkv1.DeviceSummary {
			var b vkv1.FleetBinding
			_ = k8sClient.Get(ctx, key, &b)
			return b.Status.Devices
		}, 20*time.Second).Should(Equal(&vkv1.DeviceSummary{Total: 3, Online: 2, Owned: 1}))
		var got vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, key, &got)).To(Succeed())
		Expect(got.Status.UnusableDevices).To(ConsistOf(And(HaveField("Name", "device-3"), HaveField("Reason", "OwnedByFleet"),
			HaveField("Message", ContainSubstring("owned by Flightctl fleet owned-fleet")))))
		Expect(meta.FindStatusCondition(got.Status.Conditions, vkv1.ConditionDegraded)).To(haveReason(metav1.ConditionTrue, vkv1.ReasonDevicesOwnedByFleet))
		// Only the two usable devices count towards capacity.
		Expect(got.Status.Capacity.Cpu().Cmp(resource.MustParse("8"))).To(Equal(0))
	})

	DescribeTable("the API schema refuses invalid specs with a clear message",
		func(mutate func(*vkv1.FleetBinding), msg string) {
			fb := binding(ns, "invalid", "edge-fleet-1", "creds")
			mutate(fb)
			err := k8sClient.Create(ctx, fb)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(msg))
		},
		Entry("reconnect timeout below 10s", func(b *vkv1.FleetBinding) { b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 5 * time.Second} }, "reconnectTimeout must be at least 10s"),
		Entry("negative poll interval", func(b *vkv1.FleetBinding) { b.Spec.StatusPollInterval = &metav1.Duration{Duration: -time.Second} }, "statusPollInterval must be at least 1s"),
		Entry("full resync below 10s", func(b *vkv1.FleetBinding) { b.Spec.FullResyncInterval = &metav1.Duration{Duration: 5 * time.Second} }, "fullResyncInterval must be at least 10s"),
		Entry("full resync above 1h", func(b *vkv1.FleetBinding) { b.Spec.FullResyncInterval = &metav1.Duration{Duration: 2 * time.Hour} }, "fullResyncInterval must be at most 1h"),
		Entry("fleet name with capitals", func(b *vkv1.FleetBinding) { b.Spec.Fleet = "Edge_Fleet" }, "spec.fleet"),
		Entry("unknown application format", func(b *vkv1.FleetBinding) { b.Spec.ApplicationFormat = "helm" }, "spec.applicationFormat"),
		Entry("no credentials Secret name", func(b *vkv1.FleetBinding) { b.Spec.Flightctl.CredentialsSecretRef.Name = "" }, "credentialsSecretRef.name must name a Secret"),
		Entry("zero max pods", func(b *vkv1.FleetBinding) { b.Spec.MaxPods = -1 }, "spec.maxPods"),
	)

	It("applies defaults from the CRD schema", func() {
		fb := binding(ns, "defaults", ns, "creds")
		Expect(k8sClient.Create(ctx, fb)).To(Succeed())
		var got vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(fb), &got)).To(Succeed())
		Expect(got.Spec.MaxPods).To(Equal(int32(110)))
		Expect(got.Spec.ApplicationFormat).To(Equal(vkv1.ApplicationFormatQuadlet))
		Expect(got.Spec.DeviceReserve.Cpu().String()).To(Equal("250m"))
		Expect(got.Spec.DeviceReserve.Memory().String()).To(Equal("512Mi"))
		Expect(got.Spec.ReconnectTimeout).To(BeNil(), "unset so the ConfigMap default applies")
	})
})

// expand fills the placeholders of a table entry's Secret.
func expand(v string, sim *flightctlsim.Sim) string {
	switch v {
	case "$URL":
		return sim.URL()
	case "$TOKEN":
		return sim.Token()
	case "$DEADURL":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := l.Addr().String()
		Expect(l.Close()).To(Succeed())
		return "http://" + addr
	}
	return v
}
