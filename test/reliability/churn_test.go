package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// The workloads the churn drives, all in one namespace.
const (
	testNamespace  = "reliability"
	deploymentName = "churn"
	appLabel       = "app"
	bareApp        = "bare"
)

// images the churn moves pods between; registry-qualified, as Flightctl
// requires in quadlet files, and none of them makes the simulated agent
// fail.
var images = []string{
	"docker.io/library/nginx:1.27-alpine",
	"docker.io/library/nginx:1.28-alpine",
	"quay.io/libpod/alpine:3.10.2",
}

// opCounts counts churn operations.
type opCounts struct {
	Creates, Updates, Deletes, Scales, Errors int
}

func (o opCounts) total() int { return o.Creates + o.Updates + o.Deletes + o.Scales }

func (o opCounts) minus(p opCounts) opCounts {
	return opCounts{o.Creates - p.Creates, o.Updates - p.Updates, o.Deletes - p.Deletes, o.Scales - p.Scales, o.Errors - p.Errors}
}

// barePod is a bare pod the churn created and has not deleted.
type barePod struct {
	name  string
	uid   types.UID
	image string
	// sentinel pods were created or re-imaged while a fault was active;
	// the churn leaves them alone until the next phase, so a change that
	// failed during the fault must be completed by the manager itself.
	sentinel bool
}

// model is what the churn expects to exist: the bare pods it created and
// did not delete (with the image last set), and the Deployment's replicas.
type model struct {
	mu   sync.Mutex
	bare map[string]*barePod
	// deleted are the bare pods the churn deleted.
	deleted  map[string]bool
	next     int
	replicas int32
	ops      opCounts
	errs     []string
}

func newModel(replicas int32) *model {
	return &model{bare: map[string]*barePod{}, deleted: map[string]bool{}, replicas: replicas}
}

func (m *model) counts() opCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// expectation is a copy of the model for one evaluation.
func (m *model) expectation() (map[string]barePod, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]barePod, len(m.bare))
	for k, v := range m.bare {
		out[k] = *v
	}
	return out, m.replicas
}

// releaseSentinels hands the sentinels back to the churn.
func (m *model) releaseSentinels() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.bare {
		b.sentinel = false
	}
}

// hold keeps the churn away from these bare pods until the next phase, as
// from sentinels, so what happens to them is the product's doing.
func (m *model) hold(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		if b := m.bare[n]; b != nil {
			b.sentinel = true
		}
	}
}

// deletedByChurn reports whether the churn deleted a pod found gone,
// allowing the churn a moment to record a deletion it just made.
func (m *model) deletedByChurn(name string) bool {
	for i := 0; i < 20; i++ {
		if m.churnDeleted(name) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// churnDeleted reports whether the churn deleted the bare pod.
func (m *model) churnDeleted(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deleted[name]
}

// forget drops bare pods that vanished for a documented reason (a
// DeviceTimeout reschedule deletes bare pods).
func (m *model) forget(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		delete(m.bare, n)
	}
}

func (m *model) recordErr(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops.Errors++
	if len(m.errs) < 20 {
		m.errs = append(m.errs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

// churner creates, re-images and deletes bare pods and scales the
// Deployment, one operation every interval, through the API server.
type churner struct {
	kube        kubernetes.Interface
	fleet       string
	model       *model
	rngMu       sync.Mutex
	rng         *rand.Rand
	maxBare     int
	maxReplicas int32
	interval    time.Duration
}

// run churns until ctx ends; an operation under way completes (with its
// own timeout) so the model always matches what the API server accepted.
func (c *churner) run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		opCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.step(opCtx)
		cancel()
	}
}

// intN is rand.IntN for both goroutines that use the churner (the churn
// and the phase driver placing sentinels).
func (c *churner) intN(n int) int {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.IntN(n)
}

func (c *churner) step(ctx context.Context) {
	c.model.mu.Lock()
	names := make([]string, 0, len(c.model.bare))
	for name, b := range c.model.bare {
		if !b.sentinel {
			names = append(names, name)
		}
	}
	c.model.mu.Unlock()
	sort.Strings(names)
	n := len(names)

	type choice struct {
		weight int
		do     func(context.Context)
	}
	var choices []choice
	if n < c.maxBare {
		choices = append(choices, choice{3, func(ctx context.Context) { _, _ = c.create(ctx, "bare", false) }})
	}
	if n > 0 {
		victim := names[c.intN(n)]
		choices = append(choices,
			choice{3, func(ctx context.Context) { _ = c.reimage(ctx, victim, false) }},
			choice{2, func(ctx context.Context) { c.delete(ctx, victim) }})
	}
	choices = append(choices, choice{2, c.scale})
	total := 0
	for _, ch := range choices {
		total += ch.weight
	}
	r := c.intN(total)
	for _, ch := range choices {
		if r < ch.weight {
			ch.do(ctx)
			return
		}
		r -= ch.weight
	}
}

// create creates a bare pod; a sentinel is left alone by the churn until
// the next phase.
func (c *churner) create(ctx context.Context, prefix string, sentinel bool) (string, error) {
	c.model.mu.Lock()
	c.model.next++
	name := fmt.Sprintf("%s-%04d", prefix, c.model.next)
	c.model.mu.Unlock()
	image := images[c.intN(len(images))]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Labels: map[string]string{appLabel: bareApp}},
		Spec:       podSpec(c.fleet, image),
	}
	created, err := c.kube.CoreV1().Pods(testNamespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.model.recordErr("create pod %s: %v", name, err)
		return "", err
	}
	c.model.mu.Lock()
	c.model.bare[name] = &barePod{name: name, uid: created.UID, image: image, sentinel: sentinel}
	c.model.ops.Creates++
	c.model.mu.Unlock()
	return name, nil
}

// reimage changes the pod's image (the one field of a running pod's
// containers Kubernetes lets change): the manager rewrites the application.
// A sentinel is marked before the change so the churn leaves it alone.
func (c *churner) reimage(ctx context.Context, name string, sentinel bool) error {
	if sentinel {
		c.model.mu.Lock()
		if b := c.model.bare[name]; b != nil {
			b.sentinel = true
		}
		c.model.mu.Unlock()
	}
	var image string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.kube.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		image = images[c.intN(len(images))]
		for image == p.Spec.Containers[0].Image {
			image = images[c.intN(len(images))]
		}
		p.Spec.Containers[0].Image = image
		_, err = c.kube.CoreV1().Pods(testNamespace).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		// A pod deleted by a DeviceTimeout reschedule is NotFound; the
		// evaluation accounts for it. One the churn itself deleted
		// meanwhile is no refused call.
		if !apierrors.IsNotFound(err) || !c.model.deletedByChurn(name) {
			c.model.recordErr("set image of pod %s: %v", name, err)
		}
		return err
	}
	c.model.mu.Lock()
	if b := c.model.bare[name]; b != nil {
		b.image = image
	}
	c.model.ops.Updates++
	c.model.mu.Unlock()
	return nil
}

// sentinels creates one bare pod and re-images one running bare pod while
// a fault is active, and keeps the churn away from both until the next
// phase: whatever failed during the fault must be completed by the manager
// on its own once the fault is gone (the churn's later operations would
// otherwise mask a change that was dropped).
func (c *churner) sentinels(ctx context.Context) (created, reimaged string, err error) {
	if created, err = c.create(ctx, "sentinel", true); err != nil {
		return "", "", err
	}
	pods, err := c.kube.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: appLabel + "=" + bareApp})
	if err != nil {
		return created, "", err
	}
	c.model.mu.Lock()
	var candidates []string
	for _, p := range pods.Items {
		if b := c.model.bare[p.Name]; b != nil && !b.sentinel && p.DeletionTimestamp == nil && runningReady(&p) {
			candidates = append(candidates, p.Name)
		}
	}
	c.model.mu.Unlock()
	if len(candidates) == 0 {
		return created, "", nil
	}
	sort.Strings(candidates)
	// The churn may be deleting a candidate right now (it chose it before
	// the reimage marks it a sentinel): then take another one.
	for len(candidates) > 0 {
		i := c.intN(len(candidates))
		reimaged = candidates[i]
		err = c.reimage(ctx, reimaged, true)
		if !apierrors.IsNotFound(err) || !c.model.deletedByChurn(reimaged) {
			return created, reimaged, err
		}
		candidates = append(candidates[:i], candidates[i+1:]...)
	}
	return created, "", nil
}

func (c *churner) delete(ctx context.Context, name string) {
	err := c.kube.CoreV1().Pods(testNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		c.model.recordErr("delete pod %s: %v", name, err)
		return
	}
	c.model.mu.Lock()
	delete(c.model.bare, name)
	c.model.deleted[name] = true
	c.model.ops.Deletes++
	c.model.mu.Unlock()
}

func (c *churner) scale(ctx context.Context) {
	c.model.mu.Lock()
	cur := c.model.replicas
	c.model.mu.Unlock()
	want := 1 + int32(c.intN(int(c.maxReplicas)))
	for want == cur && c.maxReplicas > 1 {
		want = 1 + int32(c.intN(int(c.maxReplicas)))
	}
	_, err := c.kube.AppsV1().Deployments(testNamespace).UpdateScale(ctx, deploymentName,
		&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: deploymentName, Namespace: testNamespace}, Spec: autoscalingv1.ScaleSpec{Replicas: want}},
		metav1.UpdateOptions{})
	if err != nil {
		c.model.recordErr("scale deployment to %d: %v", want, err)
		return
	}
	c.model.mu.Lock()
	c.model.replicas = want
	c.model.ops.Scales++
	c.model.mu.Unlock()
}

// podSpec is a small pod for the fleet's node: it fits many times on one
// device, so placement never runs out of room.
func podSpec(fleet, image string) corev1.PodSpec {
	grace := int64(30)
	return corev1.PodSpec{
		NodeSelector:                  map[string]string{vkv1.LabelFleet: fleet},
		TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{
			Name:  "app",
			Image: image,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			}},
		}},
	}
}

func deployment(fleet string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{appLabel: deploymentName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deploymentName, Namespace: testNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec(fleet, images[0]),
			},
		},
	}
}
