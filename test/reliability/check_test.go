package reliability

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// Kinds of invariant violations. The figures' "lost", "duplicated" and
// "leaked" columns count the first three groups; the others mean "not
// converged" (or a stuck pod) and fail the phase just the same.
const (
	// lost: a pod that should run has no application anywhere, sits on a
	// device that no longer exists, failed, or vanished without a
	// documented reason.
	kindLost = "lost"
	// duplicated: a pod's application is on more than one device (or twice
	// in one spec), or on a device other than the one its annotation names.
	kindDuplicated = "duplicated"
	// leaked: an owned application whose pod is gone.
	kindLeaked = "leaked"
	// stale: the application does not carry the pod's current image.
	kindStale = "stale"
	// not-ready: a pod that should run is not Running and Ready.
	kindNotReady = "not-ready"
	// unplaced: a pod bound to the node has no device annotation.
	kindUnplaced = "unplaced"
	// unscheduled: a pod of the test namespace is not bound to the node.
	kindUnscheduled = "unscheduled"
	// terminating: a deleted pod is still there.
	kindTerminating = "terminating"
	// deployment: the Deployment does not have its replicas ready.
	kindDeployment = "deployment"
)

type violation struct {
	kind    string
	subject string
	detail  string
}

func (v violation) String() string { return fmt.Sprintf("[%s] %s: %s", v.kind, v.subject, v.detail) }

// state is one look at the system: the API server's pods and Deployment,
// Flightctl's devices, and the pods that a DeviceTimeout rescheduled.
type state struct {
	pods       []corev1.Pod
	devices    []flightctl.Device
	deployment *appsv1.Deployment
	// timedOut holds the UIDs of pods with a DeviceTimeout event.
	timedOut map[types.UID]bool
}

func gather(ctx context.Context, kube kubernetes.Interface, sim *simClient) (*state, error) {
	pods, err := kube.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	d, err := kube.AppsV1().Deployments(testNamespace).Get(ctx, deploymentName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err != nil {
		d = nil
	}
	timedOut, err := deviceTimeouts(ctx, kube)
	if err != nil {
		return nil, err
	}
	// Flightctl last, so an application written for a pod listed above is
	// not missed.
	devs, err := sim.devices(ctx)
	if err != nil {
		return nil, err
	}
	// The sharded phase's extra bindings and their devices are checked
	// by that phase (checkShardedWorkloads).
	mine := devs[:0]
	for _, dev := range devs {
		if !strings.HasPrefix(dev.Metadata.Name, shardDevicePrefix) {
			mine = append(mine, dev)
		}
	}
	return &state{pods: pods.Items, devices: mine, deployment: d, timedOut: timedOut}, nil
}

// deviceTimeouts lists the pods that got a DeviceTimeout event (the
// documented reschedule of pods whose device did not come back in time).
func deviceTimeouts(ctx context.Context, kube kubernetes.Interface) (map[types.UID]bool, error) {
	evs, err := kube.CoreV1().Events(testNamespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("reason", "DeviceTimeout").String(),
	})
	if err != nil {
		return nil, err
	}
	out := map[types.UID]bool{}
	for _, e := range evs.Items {
		if e.InvolvedObject.Kind == "Pod" {
			out[e.InvolvedObject.UID] = true
		}
	}
	return out, nil
}

// expectation is what should exist: the churn's live bare pods and the
// Deployment's replicas.
type expectation struct {
	node     string
	bare     map[string]barePod
	replicas int32
}

// evaluation is the outcome of checking a state against the invariants.
type evaluation struct {
	violations []violation
	// rescheduled are live bare pods of the model that are gone after a
	// DeviceTimeout event: deleted by the documented reschedule.
	rescheduled []string
	// shouldRun counts the pods that should run; apps counts owned
	// applications on all devices.
	shouldRun, apps int
}

func (e evaluation) ok() bool { return len(e.violations) == 0 }

// count returns how many violations fall in each figures column.
func (e evaluation) count() (lost, duplicated, leaked, stale int) {
	for _, v := range e.violations {
		switch v.kind {
		case kindLost:
			lost++
		case kindDuplicated:
			duplicated++
		case kindLeaked:
			leaked++
		case kindStale:
			stale++
		}
	}
	return
}

// pods lists the pods named by violations (namespace/name subjects).
func (e evaluation) pods() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range e.violations {
		ns, name, ok := strings.Cut(v.subject, "/")
		if !ok || ns != testNamespace || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (e evaluation) summary(max int) string {
	byKind := map[string]int{}
	for _, v := range e.violations {
		byKind[v.kind]++
	}
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%d violation(s) (%s) over %d pods that should run and %d owned applications",
		len(e.violations), strings.Join(kinds, " "), e.shouldRun, e.apps)
	for i, v := range e.violations {
		if i == max {
			fmt.Fprintf(&b, "\n      ... %d more", len(e.violations)-max)
			break
		}
		fmt.Fprintf(&b, "\n      %s", v)
	}
	return b.String()
}

// placement is where one application name was found.
type placement struct {
	device string
	app    flightctl.ApplicationSpec
}

// evaluate checks a state against the invariants.
func evaluate(st *state, exp expectation) evaluation {
	var ev evaluation
	add := func(kind, subject, format string, args ...any) {
		ev.violations = append(ev.violations, violation{kind, subject, fmt.Sprintf(format, args...)})
	}

	// Every owned application, by name.
	found := map[string][]placement{}
	devices := map[string]bool{}
	// fleetOwner is the Flightctl fleet owning a device, "" for none.
	fleetOwner := map[string]string{}
	for _, d := range st.devices {
		devices[d.Metadata.Name] = true
		if d.Metadata.Owner != nil {
			fleetOwner[d.Metadata.Name] = *d.Metadata.Owner
		}
		if d.Spec == nil {
			continue
		}
		for _, a := range d.Spec.Applications {
			if strings.HasPrefix(a.Name, translate.AppNamePrefix) {
				found[a.Name] = append(found[a.Name], placement{device: d.Metadata.Name, app: a})
				ev.apps++
			}
		}
	}

	// Pods that should run, and those being deleted.
	expected := map[string]bool{}
	terminating := map[string]string{}
	byName := map[string]*corev1.Pod{}
	runningReplicas := int32(0)
	for i := range st.pods {
		p := &st.pods[i]
		byName[p.Name] = p
		key := p.Namespace + "/" + p.Name
		app := translate.AppName(p)
		switch {
		case p.DeletionTimestamp != nil:
			terminating[app] = key
			add(kindTerminating, key, "deleted at %s, still there (phase %s, device %s, application on %s)",
				p.DeletionTimestamp.Format("15:04:05"), p.Status.Phase, orNone(p.Annotations[vkv1.AnnotationDevice]), where(found[app]))
			continue
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			add(kindLost, key, "phase %s (reason %q, message %q): this pod will never run again", p.Status.Phase, p.Status.Reason, p.Status.Message)
			continue
		}
		ev.shouldRun++
		expected[app] = true
		if p.Labels[appLabel] == deploymentName {
			runningReplicas++
		}
		if p.Spec.NodeName == "" {
			add(kindUnscheduled, key, "not bound to a node (%s)", podConditions(p))
			continue
		}
		if p.Spec.NodeName != exp.node {
			add(kindUnscheduled, key, "bound to node %s, not %s", p.Spec.NodeName, exp.node)
			continue
		}
		dev := p.Annotations[vkv1.AnnotationDevice]
		places := found[app]
		switch {
		case dev != "" && !devices[dev]:
			add(kindLost, key, "placed on device %s, which no longer exists in Flightctl; application on %s", dev, where(places))
		case dev != "" && fleetOwner[dev] != "":
			// The fleet's template replaced the device's spec: the pod
			// cannot run there (and no per-device write is accepted).
			add(kindLost, key, "placed on device %s, which Flightctl %s owns (per-device workloads cannot run there); application on %s",
				dev, fleetOwner[dev], where(places))
		case len(places) == 0:
			add(kindLost, key, "no application %s on any device (%s annotation %q; %s)", app, vkv1.AnnotationDevice, dev, podConditions(p))
		case dev == "":
			add(kindUnplaced, key, "application %s runs on %s but the pod has no %s annotation (%s)", app, where(places), vkv1.AnnotationDevice, podConditions(p))
		default:
			onDev := 0
			for _, pl := range places {
				if pl.device == dev {
					onDev++
				}
			}
			switch {
			case onDev == 0:
				add(kindDuplicated, key, "application %s is on %s, not on its device %s", app, where(places), dev)
			case len(places) > 1:
				add(kindDuplicated, key, "application %s appears %d times: %s", app, len(places), where(places))
			}
			for _, pl := range places {
				if pl.device != dev {
					continue
				}
				text := appText(pl.app)
				for _, c := range p.Spec.Containers {
					if !strings.Contains(text, c.Image) {
						add(kindStale, key, "application %s on %s does not carry image %s (has %s)", app, dev, c.Image, strings.Join(imagesIn(text), ","))
					}
				}
			}
		}
		if !runningReady(p) {
			add(kindNotReady, key, "%s (device %s)", podConditions(p), orNone(dev))
		}
	}

	// Owned applications whose pod is gone.
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if expected[n] {
			continue
		}
		if key, ok := terminating[n]; ok {
			_ = key // reported as terminating above
			continue
		}
		add(kindLeaked, n, "owned application on %s whose pod is gone", where(found[n]))
	}

	// Bare pods the churn created and did not delete.
	bareNames := make([]string, 0, len(exp.bare))
	for n := range exp.bare {
		bareNames = append(bareNames, n)
	}
	sort.Strings(bareNames)
	for _, n := range bareNames {
		b := exp.bare[n]
		p, ok := byName[n]
		switch {
		case ok && p.UID == b.uid:
			if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != b.image {
				add(kindStale, testNamespace+"/"+n, "image %s in the API server, the churn set %s", p.Spec.Containers[0].Image, b.image)
			}
		case st.timedOut[b.uid]:
			ev.rescheduled = append(ev.rescheduled, n)
		default:
			add(kindLost, testNamespace+"/"+n, "bare pod (uid %s) vanished without a DeviceTimeout event; nobody deleted it", b.uid)
		}
	}

	// The Deployment.
	if d := st.deployment; d == nil {
		add(kindDeployment, deploymentName, "Deployment %s/%s is missing", testNamespace, deploymentName)
	} else {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if want != exp.replicas {
			add(kindDeployment, deploymentName, "spec.replicas %d, the churn set %d", want, exp.replicas)
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas != want || d.Status.Replicas != want || runningReplicas != want {
			add(kindDeployment, deploymentName, "want %d replicas: status replicas %d, ready %d (observed generation %d of %d); %d pods that should run",
				want, d.Status.Replicas, d.Status.ReadyReplicas, d.Status.ObservedGeneration, d.Generation, runningReplicas)
		}
	}
	return ev
}

// reportedOwnedApps checks what a device's agent reports: once a fleet took
// the device and rolled its template out, none of vk-flightctl's
// applications may still run there (the pods were rescheduled elsewhere,
// so a copy left running would be a second one).
func reportedOwnedApps(st *state, device string) []violation {
	for _, d := range st.devices {
		if d.Metadata.Name != device || d.Status == nil {
			continue
		}
		var running []string
		for _, a := range d.Status.Applications {
			if strings.HasPrefix(a.Name, translate.AppNamePrefix) {
				running = append(running, a.Name+"("+a.Status+")")
			}
		}
		if len(running) > 0 {
			return []violation{{kindLeaked, device, fmt.Sprintf("the device's agent still reports vk-flightctl applications %s (summary %s)",
				strings.Join(running, ","), d.Status.Summary.Status)}}
		}
	}
	return nil
}

func runningReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podConditions summarises a pod's status for a violation message.
func podConditions(p *corev1.Pod) string {
	s := fmt.Sprintf("phase %s", orNone(string(p.Status.Phase)))
	if p.Status.Reason != "" {
		s += " reason " + p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf(", %s=%s", c.Type, c.Status)
			if c.Reason != "" {
				s += "(" + c.Reason + ")"
			}
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s += fmt.Sprintf(", %s waiting %s %q", cs.Name, w.Reason, w.Message)
		}
	}
	return s
}

func where(ps []placement) string {
	if len(ps) == 0 {
		return "no device"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.device
	}
	return strings.Join(out, ",")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// appText is everything an application says (image, inline files decoded),
// so a check can find an image reference whatever the format.
func appText(a flightctl.ApplicationSpec) string {
	var b strings.Builder
	b.WriteString(a.Image + "\n")
	for _, f := range a.Inline {
		content := f.Content
		if f.ContentEncoding == "base64" {
			if raw, err := base64.StdEncoding.DecodeString(f.Content); err == nil {
				content = string(raw)
			}
		}
		b.WriteString(content + "\n")
	}
	return b.String()
}

// imagesIn lists quadlet Image= and compose image: references.
func imagesIn(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Image="):
			out = append(out, strings.TrimPrefix(line, "Image="))
		case strings.HasPrefix(line, "image:"):
			out = append(out, strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "image:")), `"'`))
		}
	}
	return out
}
