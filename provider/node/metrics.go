package node

import (
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
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
	devicesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_devices",
		Help: "Devices a binding's selector matches, by state: online, disconnected, owned (by a Flightctl fleet, unusable).",
	}, []string{"fleet", "state"})
	podsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_pods",
		Help: "Pods of a binding's node by phase as last reported to Kubernetes.",
	}, []string{"fleet", "phase"})
	deployFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_deploy_failures_total",
		Help: "Workload writes (or placement records) that failed and were left for the status loop to retry.",
	}, []string{"fleet"})
	owedPodsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_pods_write_pending",
		Help: "Pods whose latest change has not reached Flightctl yet (retried after each successful poll).",
	}, []string{"fleet"})
	devicePolls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_device_polls_total",
		Help: "Reads of a binding's devices by kind: full (every device), hot (devices read by name), events (device events since the checkpoint), unhealthy (devices whose summaries are not healthy).",
	}, []string{"fleet", "kind"})
	hotDevices = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vk_flightctl_hot_devices",
		Help: "Devices a binding read by name at its last poll between full listings (a write in flight, a pod not settled, a status not settled, a recent event).",
	}, []string{"fleet"})
	orphansRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vk_flightctl_orphaned_workloads_removed_total",
		Help: "Applications removed from devices because their pod was gone.",
	}, []string{"fleet"})
)

func init() {
	metrics.Registry.MustRegister(statusLoopDuration, placementsTotal, placementFailures, disconnectsTotal, deployFailures, owedPodsGauge, orphansRemoved, devicesGauge, podsGauge, devicePolls, hotDevices)
}

// podPhases are reported even at zero so dashboards and alerts see them.
var podPhases = []corev1.PodPhase{corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown}

// recordGauges publishes a node's device and pod counts.
func recordGauges(fleet string, inv *inventory.Fleet, store *podStore) {
	devicesGauge.WithLabelValues(fleet, "online").Set(float64(inv.Summary.Online))
	devicesGauge.WithLabelValues(fleet, "disconnected").Set(float64(inv.Summary.Disconnected))
	devicesGauge.WithLabelValues(fleet, "owned").Set(float64(inv.Summary.Owned))
	counts := map[corev1.PodPhase]int{}
	owed := 0
	store.each(func(st *podState) {
		counts[st.status.Phase]++
		if st.owed {
			owed++
		}
	})
	owedPodsGauge.WithLabelValues(fleet).Set(float64(owed))
	for _, ph := range podPhases {
		podsGauge.WithLabelValues(fleet, string(ph)).Set(float64(counts[ph]))
	}
}

// forgetGauges removes a stopped node's series.
func forgetGauges(fleet string) {
	devicesGauge.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	podsGauge.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	owedPodsGauge.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	hotDevices.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	devicePolls.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
}
