package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// dxReconnectTimeout is the disconnect binding's spec.reconnectTimeout,
// the shortest the FleetBinding accepts.
const dxReconnectTimeout = 10 * time.Second

// disconnectResult is one device holding D Deployment pods going away
// until its pods run elsewhere.
type disconnectResult struct {
	Pods                    int     `json:"pods"`
	ReconnectTimeoutSeconds float64 `json:"reconnectTimeoutSeconds"`
	// Detect is the disconnection to the first of its pods seen not Ready.
	Detect float64 `json:"detectSeconds"`
	// Expire is the disconnection to the first of its pods deleted (the
	// reconnect timeout fired).
	Expire float64 `json:"expireSeconds"`
	// Overshoot is Expire - Detect - the reconnect timeout: how late the
	// timer fired after the manager noticed the disconnection (the timer
	// is checked once per status pass). status.disconnectedDevices has the
	// deadline in whole seconds only, too coarse for this.
	Overshoot float64 `json:"timerOvershootSeconds"`
	// Reschedule is the first deletion to D replicas Ready on other
	// devices: the headline number.
	Reschedule float64 `json:"rescheduleSeconds"`
	// Total is the disconnection to D replicas Ready elsewhere.
	Total float64 `json:"totalSeconds"`
	// ReplacementP50 and ReplacementP99 are the replacement pods'
	// creation-to-Ready latencies.
	ReplacementP50 float64 `json:"replacementP50Seconds"`
	ReplacementP99 float64 `json:"replacementP99Seconds"`
	// OldGone is the first deletion to every pod of the device gone from
	// the API server; -1 when they were still Terminating when the
	// replicas were all Ready (the bench does not wait for them).
	OldGone float64 `json:"oldPodsGoneSeconds"`
}

// dxPod is what the disconnect workload tracks per pod.
type dxPod struct {
	device             string
	ready, terminating bool
	gone               bool
	seen, readyAt      time.Time
}

// runDisconnect binds fleet bench-dx (devices bench-dx-a and bench-dx-b,
// the latter offline), runs D Deployment pods (all land on bench-dx-a),
// brings bench-dx-b online, cuts bench-dx-a off and times the way to D
// Ready replicas on bench-dx-b. KWOK has no device to lose.
func (b *bench) runDisconnect(ctx context.Context) error {
	d := b.cfg.DisconnectPods
	res := disconnectResult{Pods: d, ReconnectTimeoutSeconds: dxReconnectTimeout.Seconds(), OldGone: -1}
	if err := b.applyBinding(ctx, b.sim, "bench-flightctl-credentials", bindingSpec{Fleet: dxFleet, MaxPods: 2*d + 10, ReconnectTimeout: dxReconnectTimeout.String()}); err != nil {
		return err
	}
	defer b.deleteBinding(context.WithoutCancel(ctx), dxFleet)
	node := "vk-flightctl-" + dxFleet
	if _, err := waitNodeReady(ctx, b.cs, node, time.Minute, nil); err != nil {
		return err
	}
	if err := b.waitOnline(ctx, dxFleet, 1); err != nil {
		return err
	}

	runLabel := fmt.Sprintf("dx-%d", time.Now().UnixNano()%1e6)
	sel := "bench-run=" + runLabel
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events, err := watchPods(wctx, b.cs, sel)
	if err != nil {
		return err
	}
	pods := map[string]*dxPod{}
	apply := func(ev podEvent) *dxPod {
		p := pods[ev.pod.Name]
		if p == nil {
			p = &dxPod{seen: ev.at}
			pods[ev.pod.Name] = p
		}
		p.device = ev.pod.Annotations[vkv1.AnnotationDevice]
		p.gone = ev.deleted
		p.terminating = ev.pod.DeletionTimestamp != nil
		if r := podReady(ev.pod); r && !p.ready {
			p.readyAt = ev.at
		}
		p.ready = podReady(ev.pod)
		return p
	}
	readyOn := func(elsewhere bool) int {
		n := 0
		for _, p := range pods {
			if p.gone || p.terminating || !p.ready || p.device == "" {
				continue
			}
			if (p.device != dxA) == elsewhere {
				n++
			}
		}
		return n
	}
	onA := func() int {
		n := 0
		for _, p := range pods {
			if !p.gone && p.device == dxA {
				n++
			}
		}
		return n
	}
	waitEvents := func(what string, timeout time.Duration, done func(podEvent, *dxPod) bool) (time.Time, error) {
		deadline := time.After(timeout)
		for {
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-deadline:
				return time.Time{}, fmt.Errorf("%s not reached after %s: %d Ready on %s, %d Ready elsewhere, %d pods tracked", what, timeout, readyOn(false), dxA, readyOn(true), len(pods))
			case ev := <-events:
				if done(ev, apply(ev)) {
					return ev.at, nil
				}
			}
		}
	}

	labels := map[string]string{"bench-run": runLabel, "app": "vkbench"}
	name := "dx"
	if _, err := b.cs.AppsV1().Deployments(benchNS).Create(ctx, deployment(name, d, labels, map[string]string{vkv1.LabelFleet: dxFleet}), metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() {
		cctx := context.WithoutCancel(ctx)
		// The device must be back for its pods' deletion to be confirmed.
		_ = b.sim.do(cctx, http.MethodPost, "/sim/v1/devices/"+dxA+"/reconnect", nil)
		_ = deleteDeployment(cctx, b.cs, name)
		if err := deleteAndWait(cctx, b.cs, sel, time.Duration(120+d/2)*time.Second); err != nil {
			logf("disconnect cleanup: %v", err)
		}
	}()
	long := time.Duration(60+d/2) * time.Second
	if _, err := waitEvents("all pods Ready on "+dxA, long, func(podEvent, *dxPod) bool { return readyOn(false) == d }); err != nil {
		return err
	}
	if n := readyOn(true); n != 0 {
		return fmt.Errorf("%d pods landed on another device than %s, which should be the only one online", n, dxA)
	}

	if err := b.sim.do(ctx, http.MethodPost, "/sim/v1/devices/"+dxB+"/reconnect", nil); err != nil {
		return err
	}
	if err := b.waitOnline(ctx, dxFleet, 2); err != nil {
		return err
	}
	logf("disconnect: %d pods Ready on %s, %s online; cutting %s off", d, dxA, dxB, dxA)

	disc := time.Now()
	if err := b.sim.do(ctx, http.MethodPost, "/sim/v1/devices/"+dxA+"/disconnect", nil); err != nil {
		return err
	}
	budget := dxReconnectTimeout + long
	detectAt, err := waitEvents("pods on "+dxA+" not Ready", budget, func(_ podEvent, p *dxPod) bool {
		return p.device == dxA && !p.ready
	})
	if err != nil {
		return err
	}
	res.Detect = detectAt.Sub(disc).Seconds()

	expireAt, err := waitEvents("a pod of "+dxA+" deleted", budget, func(_ podEvent, p *dxPod) bool {
		return p.device == dxA && (p.terminating || p.gone)
	})
	if err != nil {
		return err
	}
	res.Expire = expireAt.Sub(disc).Seconds()
	res.Overshoot = res.Expire - res.Detect - dxReconnectTimeout.Seconds()

	var oldGoneAt time.Time
	doneAt, err := waitEvents("all replicas Ready elsewhere", long, func(podEvent, *dxPod) bool {
		if oldGoneAt.IsZero() && onA() == 0 {
			oldGoneAt = time.Now()
		}
		return readyOn(true) == d
	})
	if err != nil {
		return err
	}
	res.Reschedule = doneAt.Sub(expireAt).Seconds()
	res.Total = doneAt.Sub(disc).Seconds()
	if !oldGoneAt.IsZero() {
		res.OldGone = oldGoneAt.Sub(expireAt).Seconds()
	}
	var lat []float64
	for _, p := range pods {
		if p.device != dxA && !p.readyAt.IsZero() && p.seen.After(expireAt.Add(-time.Millisecond)) {
			lat = append(lat, p.readyAt.Sub(p.seen).Seconds())
		}
	}
	sort.Float64s(lat)
	res.ReplacementP50, res.ReplacementP99 = pct(lat, 50), pct(lat, 99)
	logf("disconnect: %d pods: not Ready after %.2fs, timeout fired after %.2fs (%.2fs past detection + timeout), all Running elsewhere %.2fs later (%.2fs after the disconnection); replacements p50=%.3fs p99=%.3fs",
		d, res.Detect, res.Expire, res.Overshoot, res.Reschedule, res.Total, res.ReplacementP50, res.ReplacementP99)
	b.rep.Disconnect = &res
	return nil
}

// waitOnline polls the FleetBinding until status.devices.online is n.
func (b *bench) waitOnline(ctx context.Context, fleet string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for {
		last = b.bindingStatus(ctx, fleet, "{.status.devices.online}")
		if last == strconv.Itoa(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FleetBinding %s: status.devices.online is %q after 30s, want %d", fleet, last, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
