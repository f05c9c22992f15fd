package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	statusLoopDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vk_flightctl_status_loop_duration_seconds",
		Help:    "Duration of one status poll of a fleet: device listing, node and pod status.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"fleet"})
	placementsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_placements_total",
		Help: "Pods placed on a device.",
	}, []string{"fleet"})
	placementFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_placement_failures_total",
		Help: "Placement attempts that found no device, by reason.",
	}, []string{"fleet", "reason"})
	disconnectsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_reconnection_timeouts_total",
		Help: "Reconnection timeouts by outcome: started, cancelled (device back in time), expired (pods rescheduled).",
	}, []string{"fleet", "outcome"})
	orphansRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_orphaned_workloads_removed_total",
		Help: "Applications removed from devices because their pod was gone.",
	}, []string{"fleet"})
)

func init() {
	metrics.Registry.MustRegister(statusLoopDuration, placementsTotal, placementFailures, disconnectsTotal, orphansRemoved)
}
