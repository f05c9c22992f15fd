package node_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// scrape fetches /metrics over HTTP from the registry the manager's
// metrics endpoint serves, and returns the value of one series.
func scrape(url, series string) func() float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	return func() float64 {
		resp, err := http.Get(url)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := re.FindSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
}

var _ = Describe("Metrics", func() {
	ctx := context.Background()

	It("exports devices by connectivity, pods by phase, placements and Flightctl calls", func() {
		srv := httptest.NewServer(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
		DeferCleanup(srv.Close)
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		fleet := `fleet="` + f.ns + `"`
		Expect(k8sClient.Create(ctx, f.pod("m-1", "100m", "128Mi"))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("m-hog", "100", "1Gi"))).To(Succeed())
		Eventually(f.ready(ctx, "m-1"), 30*time.Second).Should(BeTrue())

		Eventually(scrape(srv.URL, `vk_flightctl_devices{`+fleet+`,state="online"}`), 20*time.Second).Should(Equal(2.0))
		Eventually(scrape(srv.URL, `vk_flightctl_pods{`+fleet+`,phase="Running"}`), 20*time.Second).Should(Equal(1.0))
		Eventually(scrape(srv.URL, `vk_flightctl_pods{`+fleet+`,phase="Failed"}`), 20*time.Second).Should(Equal(1.0))
		Expect(scrape(srv.URL, `vk_flightctl_placements_total{`+fleet+`}`)()).To(BeNumerically(">=", 1))
		Expect(scrape(srv.URL, `vk_flightctl_placement_failures_total{`+fleet+`,reason="InsufficientResources"}`)()).To(Equal(1.0))
		Expect(scrape(srv.URL, `flightctl_client_requests_total{code="200",operation="list_devices"}`)()).To(BeNumerically(">", 0))

		Expect(f.sim.Disconnect("device-1")).To(Succeed())
		Eventually(scrape(srv.URL, `vk_flightctl_devices{`+fleet+`,state="disconnected"}`), 20*time.Second).Should(Equal(1.0))
		Eventually(scrape(srv.URL, `vk_flightctl_reconnection_timeouts_total{`+fleet+`,outcome="started"}`), 20*time.Second).Should(Equal(1.0))
	})
})
