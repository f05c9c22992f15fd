package sharding

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shardBindings = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_shard_bindings",
		Help: "FleetBindings whose Lease this replica holds (sharded mode), so whose nodes it runs.",
	}, []string{"replica"})
	shardMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_shard_members",
		Help: "Live manager replicas this replica spreads bindings over (sharded mode).",
	}, []string{"replica"})
	shardHandovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_shard_handovers_total",
		Help: "Binding Leases this replica acquired, released to another replica, or lost (could not renew).",
	}, []string{"replica", "direction"})
)

// RegisterMetrics adds the sharding metrics to reg; registering twice
// (several managers in one test process) is fine.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{shardBindings, shardMembers, shardHandovers} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
