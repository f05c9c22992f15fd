package connection

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// tokenRefreshes counts fetches of refreshing credentials (client
// credentials, refresh tokens, ServiceAccount tokens) by outcome, so an
// operator can alert on refresh failures before tokens run out.
var tokenRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "vk_flightctl_token_refreshes_total",
	Help: "Tokens fetched for refreshing Flightctl credentials, by result (ok or error).",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(tokenRefreshes)
}
