package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// churnResult is one rolling update and deletion of a P-replica
// Deployment on one target.
type churnResult struct {
	Target string `json:"target"`
	Pods   int    `json:"pods"`
	// InitialReady is creation of the Deployment to P Ready pods.
	InitialReady float64 `json:"initialReadySeconds"`
	// NewReady is the image change to P Ready pods with the new image.
	NewReady float64 `json:"newReadySeconds"`
	// Converged is the image change to P Ready new pods and no old pod
	// left (on vk an old pod is gone once its application is removed from
	// its device).
	Converged float64 `json:"convergedSeconds"`
	// NewP50 and NewP99 are the new pods' creation-to-Ready latencies.
	NewP50 float64 `json:"newPodP50Seconds"`
	NewP99 float64 `json:"newPodP99Seconds"`
	// Delete is the Deployment's deletion to no pod left.
	Delete float64 `json:"deleteSeconds"`
}

// runChurn measures a rolling image update and the deletion of a
// P-replica Deployment on vk and on KWOK.
func (b *bench) runChurn(ctx context.Context) error {
	for _, t := range b.targets() {
		res, err := churn(ctx, b, t, b.cfg.Pods)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		logf("churn %-4s %d pods: initial Ready %.2fs, new image all Ready %.2fs, converged (old gone) %.2fs, new pod p50=%.3fs p99=%.3fs, deleted in %.2fs",
			t.name, res.Pods, res.InitialReady, res.NewReady, res.Converged, res.NewP50, res.NewP99, res.Delete)
		b.rep.Churn = append(b.rep.Churn, res)
	}
	return nil
}

// churnPod is what churn tracks per pod.
type churnPod struct {
	image       string
	ready       bool
	terminating bool
	gone        bool
	seen        time.Time
	readyAt     time.Time
}

func churn(ctx context.Context, b *bench, t startTarget, p int) (churnResult, error) {
	res := churnResult{Target: t.name, Pods: p}
	cs := b.cs
	runLabel := fmt.Sprintf("churn-%s-%d", t.name, time.Now().UnixNano()%1e6)
	sel := "bench-run=" + runLabel
	name := "churn-" + t.name
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events, err := watchPods(wctx, cs, sel)
	if err != nil {
		return res, err
	}
	pods := map[string]*churnPod{}
	apply := func(ev podEvent) {
		cp := pods[ev.pod.Name]
		if cp == nil {
			cp = &churnPod{seen: ev.at}
			pods[ev.pod.Name] = cp
		}
		cp.image = podImage(ev.pod)
		cp.gone = ev.deleted
		cp.terminating = ev.pod.DeletionTimestamp != nil
		if r := podReady(ev.pod); r && !cp.ready {
			cp.readyAt = ev.at
		}
		cp.ready = podReady(ev.pod)
	}
	count := func(image string) (ready, present int) {
		for _, cp := range pods {
			if cp.gone || cp.image != image {
				continue
			}
			present++
			if cp.ready && !cp.terminating {
				ready++
			}
		}
		return ready, present
	}
	// reconcile marks pods a List no longer shows as gone: after a watch
	// error the re-list cannot report deletions.
	reconcile := func() {
		l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return
		}
		live := map[string]bool{}
		for i := range l.Items {
			live[l.Items[i].Name] = true
		}
		for n, cp := range pods {
			if !live[n] {
				cp.gone = true
			}
		}
	}
	// waitFor consumes watch events until done() holds (confirmed by a
	// List) or the timeout passes.
	waitFor := func(what string, timeout time.Duration, done func() bool) (time.Time, error) {
		deadline := time.After(timeout)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-deadline:
				r1, p1 := count(benchImage)
				r2, p2 := count(churnImage)
				return time.Time{}, fmt.Errorf("%s not reached after %s: old image %d Ready/%d present, new image %d Ready/%d present", what, timeout, r1, p1, r2, p2)
			case <-tick.C:
				reconcile()
				if done() {
					return time.Now(), nil
				}
			case ev := <-events:
				apply(ev)
				if done() {
					at := ev.at
					reconcile()
					if done() {
						return at, nil
					}
				}
			}
		}
	}
	timeout := time.Duration(120+p/2) * time.Second

	labels := map[string]string{"bench-run": runLabel, "app": "vkbench"}
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(benchNS).Create(ctx, deployment(name, p, labels, t.selector), metav1.CreateOptions{}); err != nil {
		return res, err
	}
	at, err := waitFor("initial rollout", timeout, func() bool { r, _ := count(benchImage); return r == p })
	if err != nil {
		return res, err
	}
	res.InitialReady = at.Sub(start).Seconds()

	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"pause","image":%q}]}}}}`, churnImage)
	update := time.Now()
	if _, err := cs.AppsV1().Deployments(benchNS).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return res, err
	}
	var newReadyAt time.Time
	at, err = waitFor("rolling update", timeout, func() bool {
		r, _ := count(churnImage)
		if r == p && newReadyAt.IsZero() {
			newReadyAt = time.Now()
		}
		_, old := count(benchImage)
		return r == p && old == 0
	})
	if err != nil {
		return res, err
	}
	res.Converged = at.Sub(update).Seconds()
	res.NewReady = newReadyAt.Sub(update).Seconds()
	var lat []float64
	for _, cp := range pods {
		if cp.image == churnImage && !cp.readyAt.IsZero() {
			lat = append(lat, cp.readyAt.Sub(cp.seen).Seconds())
		}
	}
	sort.Float64s(lat)
	res.NewP50, res.NewP99 = pct(lat, 50), pct(lat, 99)

	dstart := time.Now()
	if err := deleteDeployment(ctx, cs, name); err != nil {
		return res, err
	}
	if err := deleteAndWait(ctx, cs, sel, timeout); err != nil {
		return res, err
	}
	res.Delete = time.Since(dstart).Seconds()
	return res, nil
}

// podImage is a pod's first container image.
func podImage(p *corev1.Pod) string {
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	return p.Spec.Containers[0].Image
}
