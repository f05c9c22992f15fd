package node_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var _ = Describe("Deleting a binding", func() {
	ctx := context.Background()

	It("takes its applications off every device and leaves the user's own", func() {
		cfg := &flightctlsim.Config{Generate: []flightctlsim.GenerateConfig{{
			Prefix: "dev-", Count: 2, Labels: map[string]string{"fleet": "edge-fleet-1"},
			CPU: 4, Memory: "8Gi", IPStart: "192.0.2.1"}}}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, nil)
		c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
		Expect(err).NotTo(HaveOccurred())
		d, err := c.GetDevice(ctx, "dev-1")
		Expect(err).NotTo(HaveOccurred())
		d.Spec = &flightctl.DeviceSpec{Applications: []flightctl.ApplicationSpec{{Name: "user-app", AppType: flightctl.AppTypeQuadlet,
			Inline: []flightctl.InlineFile{{Path: "user.container", Content: "[Container]\nImage=quay.io/example/user:1\n"}}}}}
		_, err = c.ReplaceDevice(ctx, d)
		Expect(err).NotTo(HaveOccurred())

		for _, p := range []struct{ name, device string }{{"a", "dev-1"}, {"b", "dev-2"}} {
			Expect(k8sClient.Create(ctx, f.pod(p.name, "10m", "16Mi", onDevice(p.device)))).To(Succeed())
		}
		Eventually(f.ready(ctx, "a"), 60*time.Second).Should(BeTrue())
		Eventually(f.ready(ctx, "b"), 60*time.Second).Should(BeTrue())
		apps := func(device string) []string {
			d, err := c.GetDevice(ctx, device)
			Expect(err).NotTo(HaveOccurred())
			var out []string
			if d.Spec != nil {
				for _, a := range d.Spec.Applications {
					out = append(out, a.Name)
				}
			}
			return out
		}
		Expect(apps("dev-1")).To(HaveLen(2))
		Expect(apps("dev-2")).To(HaveLen(1))

		Expect(k8sClient.Delete(ctx, f.binding)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &vkv1.FleetBinding{}))
		}, 30*time.Second).Should(BeTrue())
		Expect(apps("dev-1")).To(Equal([]string{"user-app"}))
		Expect(apps("dev-2")).To(BeEmpty())
	})
})
