package quickstart

import (
	"bufio"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// DeviceLabel is the pod label (and annotation) that names the device a
// pod was placed on (docs/CONVENTIONS.md).
const DeviceLabel = "flightctl.io/device"

// pod reads a pod quietly; nil without error when it does not exist.
func (r *run) pod(ns, name string) (*corev1.Pod, error) {
	var p corev1.Pod
	found, err := r.getJSON(&p, "pod", name, "-n", ns)
	if err != nil || !found {
		return nil, err
	}
	return &p, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podState is a one-line summary for wait messages.
func podState(p *corev1.Pod) string {
	if p == nil {
		return "pod not found"
	}
	s := fmt.Sprintf("phase=%s ready=%t", orNothing(string(p.Status.Phase)), podReady(p))
	if p.Status.Reason != "" {
		s += " reason=" + p.Status.Reason
	}
	if dev := p.Annotations[DeviceLabel]; dev != "" {
		s += " device=" + dev
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			s += fmt.Sprintf(" %s:waiting(%s)", cs.Name, w.Reason)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s += fmt.Sprintf(" %s=%s(%s)", c.Type, c.Status, c.Message)
			break
		}
	}
	return s
}

// waitPod polls a pod until cond holds.
func (r *run) waitPod(ns, name string, timeout time.Duration, desc string, cond func(*corev1.Pod) bool) (*corev1.Pod, time.Duration, error) {
	var last *corev1.Pod
	took, err := r.waitFor(fmt.Sprintf("pod %s/%s %s", ns, name, desc), timeout, 200*time.Millisecond, func() (bool, string, error) {
		p, err := r.pod(ns, name)
		if err != nil {
			return false, "", err
		}
		last = p
		return p != nil && cond(p), podState(p), nil
	})
	return last, took, err
}

// waitPodGone polls until the pod (with this UID, when given) is gone.
func (r *run) waitPodGone(ns, name, uid string, timeout time.Duration) (time.Duration, error) {
	return r.waitFor(fmt.Sprintf("pod %s/%s deleted", ns, name), timeout, 100*time.Millisecond, func() (bool, string, error) {
		p, err := r.pod(ns, name)
		if err != nil {
			return false, "", err
		}
		if p == nil || (uid != "" && string(p.UID) != uid) {
			return true, "gone", nil
		}
		s := podState(p)
		if p.DeletionTimestamp != nil {
			s = "terminating, " + s
		}
		return false, s, nil
	})
}

// events lists the events of one pod (by UID when given), oldest first.
func (r *run) events(ns, name, uid string) ([]corev1.Event, error) {
	var list corev1.EventList
	if _, err := r.getJSON(&list, "events", "-n", ns, "--field-selector", "involvedObject.kind=Pod,involvedObject.name="+name); err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if uid == "" || string(e.InvolvedObject.UID) == uid {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(out[i]).Before(eventTime(out[j])) })
	return out, nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func eventSource(e corev1.Event) string {
	if e.Source.Component != "" {
		return e.Source.Component
	}
	return e.ReportingController
}

// waitEvents waits until the pod has an event for every reason (events
// are recorded asynchronously) and returns the pod's events.
func (r *run) waitEvents(ns, name, uid string, timeout time.Duration, reasons ...string) ([]corev1.Event, error) {
	var evs []corev1.Event
	_, err := r.waitFor(fmt.Sprintf("events %s on pod %s/%s", strings.Join(reasons, ","), ns, name), timeout, 250*time.Millisecond, func() (bool, string, error) {
		var err error
		if evs, err = r.events(ns, name, uid); err != nil {
			return false, "", err
		}
		have := map[string]bool{}
		for _, e := range evs {
			have[e.Reason] = true
		}
		var missing []string
		for _, want := range reasons {
			if !have[want] {
				missing = append(missing, want)
			}
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ","), nil
	})
	return evs, err
}

func findEvent(evs []corev1.Event, reason string) (corev1.Event, bool) {
	for _, e := range evs {
		if e.Reason == reason {
			return e, true
		}
	}
	return corev1.Event{}, false
}

// podRequests is what kube-scheduler and `kubectl describe node` count
// for a pod: the larger of the sum over containers and any init
// container, plus the pod overhead.
func podRequests(p *corev1.Pod) (cpu, mem resource.Quantity) {
	for _, c := range p.Spec.Containers {
		cpu.Add(*c.Resources.Requests.Cpu())
		mem.Add(*c.Resources.Requests.Memory())
	}
	for _, c := range p.Spec.InitContainers {
		if q := c.Resources.Requests.Cpu(); q.Cmp(cpu) > 0 {
			cpu = q.DeepCopy()
		}
		if q := c.Resources.Requests.Memory(); q.Cmp(mem) > 0 {
			mem = q.DeepCopy()
		}
	}
	if p.Spec.Overhead != nil {
		cpu.Add(*p.Spec.Overhead.Cpu())
		mem.Add(*p.Spec.Overhead.Memory())
	}
	return cpu, mem
}

// nodePods lists the non-terminated pods bound to the node, as
// `kubectl describe node` counts them.
func (r *run) nodePods() ([]corev1.Pod, error) {
	var list corev1.PodList
	if _, err := r.getJSON(&list, "pods", "-A", "--field-selector",
		"spec.nodeName="+r.e.NodeName()+",status.phase!=Succeeded,status.phase!=Failed"); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// allocated is the "Allocated resources" requests of `kubectl describe node`.
type allocated struct {
	CPU, Memory resource.Quantity
}

func (a allocated) String() string {
	return fmt.Sprintf("cpu %s, memory %s", a.CPU.String(), a.Memory.String())
}

// parseAllocated reads the Requests column of the "Allocated resources"
// table of `kubectl describe node`:
//
//	Allocated resources:
//	  (Total limits may be over 100 percent, i.e., overcommitted.)
//	  Resource           Requests    Limits
//	  --------           --------    ------
//	  cpu                250m (3%)   0 (0%)
//	  memory             320Mi (2%)  0 (0%)
func parseAllocated(describe string) (allocated, error) {
	var a allocated
	in := false
	got := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(describe))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Allocated resources:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if line != "" && !strings.HasPrefix(line, " ") {
			break // next section
		}
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "cpu" && f[0] != "memory") {
			continue
		}
		q, err := resource.ParseQuantity(f[1])
		if err != nil {
			return a, fmt.Errorf("allocated %s: %q: %w", f[0], f[1], err)
		}
		if f[0] == "cpu" {
			a.CPU = q
		} else {
			a.Memory = q
		}
		got[f[0]] = true
	}
	if !got["cpu"] || !got["memory"] {
		return a, fmt.Errorf("no cpu and memory rows under \"Allocated resources:\" in kubectl describe node")
	}
	return a, nil
}

// section returns a top-level section of `kubectl describe` output (the
// heading line and its indented lines), e.g. "Allocatable:".
func section(describe, heading string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(describe, "\n") {
		switch {
		case strings.HasPrefix(line, heading):
			in = true
		case in && line != "" && !strings.HasPrefix(line, " "):
			return strings.TrimRight(b.String(), "\n")
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// describeNode runs `kubectl describe node` quietly.
func (r *run) describeNode() (string, error) {
	return r.kubectlQuiet("describe", "node", r.e.NodeName())
}

// showSection prints `kubectl describe ... | grep -A` style excerpts.
func (r *run) showSection(cmd, describe, heading string) {
	r.printf("$ %s\n", cmd)
	r.printf("%s\n", indent(section(describe, heading), "    "))
}

// expectedAllocated sums the requests of the node's pods.
func (r *run) expectedAllocated() (allocated, []corev1.Pod, error) {
	pods, err := r.nodePods()
	if err != nil {
		return allocated{}, nil, err
	}
	var a allocated
	for i := range pods {
		c, m := podRequests(&pods[i])
		a.CPU.Add(c)
		a.Memory.Add(m)
	}
	return a, pods, nil
}

func sameQuantity(a, b resource.Quantity) bool { return a.Cmp(b) == 0 }
