package node

import (
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// wirePod is a Running vk-flightctl pod as the API server sends it, with
// {name}, {rv}, {image} and {phase} to fill in.
const wirePod = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"{name}","namespace":"ns","uid":"uid-{name}",
"resourceVersion":"{rv}","creationTimestamp":"2026-12-03T15:00:00Z","labels":{"app":"bench","flightctl.io/device":"dev-042"},
"annotations":{"flightctl.io/device":"dev-042"},
"managedFields":[{"manager":"vkbench","operation":"Update","apiVersion":"v1","time":"2026-12-03T15:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:containers":{}}}}]},
"spec":{"containers":[{"name":"pause","image":"{image}","resources":{"requests":{"cpu":"10m","memory":"16Mi"}},
"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],
"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default",
"serviceAccount":"default","automountServiceAccountToken":false,"nodeName":"vk-flightctl-bench","securityContext":{},
"schedulerName":"default-scheduler","tolerations":[{"operator":"Exists"}],"priority":0,"enableServiceLinks":true,
"preemptionPolicy":"PreemptLowerPriority"},
"status":{"phase":"{phase}","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-12-03T15:00:02Z"},
{"type":"PodScheduled","status":"True","lastTransitionTime":"2026-12-03T15:00:00Z"}],"hostIP":"10.0.3.42",
"podIP":"10.0.3.42","startTime":"2026-12-03T15:00:01Z","containerStatuses":[{"name":"pause","state":{"running":
{"startedAt":"2026-12-03T15:00:02Z"}},"ready":true,"restartCount":0,"image":"{image}","imageID":"",
"containerID":"flightctl://dev-042/pause","started":true}],"qosClass":"Burstable"}}`

func decodePod(t testing.TB, name, rv, image, phase string) *corev1.Pod {
	t.Helper()
	s := strings.NewReplacer("{name}", name, "{rv}", rv, "{image}", image, "{phase}", phase).Replace(wirePod)
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(s), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*corev1.Pod)
}

// cachedAs puts pod in a fresh informer-like store behind a podCache.
func cachedAs(t testing.TB, pods ...*corev1.Pod) *podCache {
	t.Helper()
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	for _, p := range pods {
		if err := store.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return &podCache{store: store}
}

func transformed(t testing.TB, c *podCache, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := c.transform(pod)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*corev1.Pod)
}

// TestPodCacheSharesUnchangedParts: a new version of a cached pod whose
// status changed shares the cached version's spec and metadata maps; a
// changed spec, or another pod of the same name, shares nothing.
func TestPodCacheSharesUnchangedParts(t *testing.T) {
	old := decodePod(t, "p", "1", "pause:3.10", "Pending")
	c := cachedAs(t, old)

	next := transformed(t, c, decodePod(t, "p", "2", "pause:3.10", "Running"))
	if len(next.ManagedFields) != 0 {
		t.Errorf("managedFields kept: %v", next.ManagedFields)
	}
	if &next.Spec.Containers[0] != &old.Spec.Containers[0] || next.Spec.TerminationGracePeriodSeconds != old.Spec.TerminationGracePeriodSeconds {
		t.Error("an unchanged spec is not shared with the cached version")
	}
	if fmt.Sprintf("%p", next.Labels) != fmt.Sprintf("%p", old.Labels) || fmt.Sprintf("%p", next.Annotations) != fmt.Sprintf("%p", old.Annotations) {
		t.Error("unchanged labels or annotations are not shared with the cached version")
	}
	if next.Status.Phase != corev1.PodRunning || next.ResourceVersion != "2" {
		t.Errorf("the new version lost its own status or version: %s %s", next.Status.Phase, next.ResourceVersion)
	}

	changed := transformed(t, c, decodePod(t, "p", "3", "pause:3.11", "Running"))
	if &changed.Spec.Containers[0] == &old.Spec.Containers[0] || changed.Spec.Containers[0].Image != "pause:3.11" {
		t.Error("a changed spec is shared with the cached version")
	}

	other := decodePod(t, "p", "4", "pause:3.10", "Running")
	other.UID = "another-pod"
	other = transformed(t, c, other)
	if &other.Spec.Containers[0] == &old.Spec.Containers[0] {
		t.Error("a new pod of the same name shares the old pod's spec")
	}
}

// TestPodCacheBytesPerVersion: while virtual-kubelet and the provider hold
// the version a pod was created with, the version the informer caches
// after its status write must cost well under a second full pod.
func TestPodCacheBytesPerVersion(t *testing.T) {
	const n = 2000
	first := make([]*corev1.Pod, n)
	for i := range first {
		first[i] = decodePod(t, fmt.Sprintf("p%05d", i), "1", "pause:3.10", "Pending")
	}
	c := cachedAs(t, first...)
	perVersion := heapPerPod(n, func(i int) *corev1.Pod {
		return transformed(t, c, decodePod(t, fmt.Sprintf("p%05d", i), "2", "pause:3.10", "Running"))
	})
	runtime.KeepAlive(first)
	full := podBytes(t)
	t.Logf("a full decoded pod: %.0f B; a second version with its spec shared: %.0f B", full, perVersion)
	if perVersion > 0.7*full {
		t.Errorf("a second version of a pod costs %.0f B, a full pod %.0f B: its spec is not shared", perVersion, full)
	}
}

// podBytes is the heap one decoded pod keeps.
func podBytes(t *testing.T) float64 {
	return heapPerPod(2000, func(i int) *corev1.Pod {
		p := decodePod(t, fmt.Sprintf("q%05d", i), "1", "pause:3.10", "Running")
		p.ManagedFields = nil
		return p
	})
}

// heapPerPod is the live heap each of n pods made by mk keeps.
func heapPerPod(n int, mk func(i int) *corev1.Pod) float64 {
	before := liveHeap()
	keep := make([]*corev1.Pod, n)
	for i := range keep {
		keep[i] = mk(i)
	}
	b := float64(liveHeap()-before) / float64(n)
	runtime.KeepAlive(keep)
	return b
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestStatusReportCarriesNoSpec: what virtual-kubelet keeps per pod is
// metadata and status only. The report shares them with the cache
// (virtual-kubelet deep-copies each report before its callback returns),
// so the placement record notify adds must land on copies of the maps,
// never on the informer's pod.
func TestStatusReportCarriesNoSpec(t *testing.T) {
	base := decodePod(t, "p", "1", "pause:3.10", "Pending")
	status := corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}}
	r := statusReport(base, status)
	if len(r.Spec.Containers) != 0 || r.Spec.NodeName != "" {
		t.Errorf("the report carries a spec: %+v", r.Spec)
	}
	if r.Name != "p" || r.UID != base.UID || r.Labels["app"] != "bench" || r.Status.Phase != corev1.PodRunning {
		t.Errorf("the report lost metadata or status: %+v", r)
	}

	annotations, labels := maps.Clone(base.Annotations), maps.Clone(base.Labels)
	var got *corev1.Pod
	k := &kubePods{}
	k.setCallback(func(p *corev1.Pod) { got = p.DeepCopy() })
	k.notify(podState{pod: base, device: "dev-1", status: status})
	if got == nil || got.Annotations[vkv1.AnnotationDevice] != "dev-1" || got.Labels[vkv1.LabelDevice] != "dev-1" || got.Labels["app"] != "bench" {
		t.Fatalf("the report lacks the placement record or the pod's labels: %+v", got)
	}
	if !maps.Equal(base.Annotations, annotations) || !maps.Equal(base.Labels, labels) {
		t.Errorf("notify changed the informer's pod: annotations %v, labels %v", base.Annotations, base.Labels)
	}
}

// TestAdoptStatus: a record shares the informer's status once the status
// it reported comes back, and keeps its own when they differ or the
// informer's pod is another one of the same name.
func TestAdoptStatus(t *testing.T) {
	cached := decodePod(t, "p", "2", "pause:3.10", "Running")
	s := newPodStore()
	st, _ := s.admit(decodePod(t, "p", "1", "pause:3.10", "Pending"))
	own := *cached.Status.DeepCopy()
	s.with(st, func(st *podState) { st.status = own })

	s.adoptStatus(cached)
	if v := s.view(st); &v.status.Conditions[0] != &cached.Status.Conditions[0] {
		t.Error("an equal status is not shared with the informer's copy")
	}

	other := decodePod(t, "p", "3", "pause:3.10", "Running")
	other.UID = "another-pod"
	s.with(st, func(st *podState) { st.status = own })
	s.adoptStatus(other)
	if v := s.view(st); &v.status.Conditions[0] != &own.Conditions[0] {
		t.Error("the status of another pod of the same name was adopted")
	}

	changed := decodePod(t, "p", "4", "pause:3.10", "Pending")
	s.adoptStatus(changed)
	if v := s.view(st); v.status.Phase != corev1.PodRunning || &v.status.Conditions[0] != &own.Conditions[0] {
		t.Error("a different status replaced the record's")
	}
}

// TestPodCacheSharesTemplateParts: pods of one template share their
// resources, tolerations and labels; a pod that differs keeps its own.
func TestPodCacheSharesTemplateParts(t *testing.T) {
	c := cachedAs(t)
	a := transformed(t, c, decodePod(t, "a", "1", "pause:3.10", "Running"))
	b := transformed(t, c, decodePod(t, "b", "1", "pause:3.10", "Running"))
	same := func(x, y any) bool { return fmt.Sprintf("%p", x) == fmt.Sprintf("%p", y) }
	if !same(a.Spec.Containers[0].Resources.Requests, b.Spec.Containers[0].Resources.Requests) {
		t.Error("two pods of one template do not share their resource requests")
	}
	if &a.Spec.Tolerations[0] != &b.Spec.Tolerations[0] {
		t.Error("two pods of one template do not share their tolerations")
	}
	if !same(a.Labels, b.Labels) {
		t.Error("two pods with equal labels do not share them")
	}
	if a.Name != "a" || b.Name != "b" || b.UID != "uid-b" {
		t.Errorf("pods lost their own metadata: %s/%s %s", a.Name, b.Name, b.UID)
	}

	other := decodePod(t, "c", "1", "pause:3.10", "Running")
	other.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("20m")
	other.Labels["tier"] = "front"
	other = transformed(t, c, other)
	if same(other.Spec.Containers[0].Resources.Requests, a.Spec.Containers[0].Resources.Requests) ||
		other.Spec.Containers[0].Resources.Requests.Cpu().MilliValue() != 20 {
		t.Errorf("a pod with other requests shares the template's: %v", other.Spec.Containers[0].Resources.Requests)
	}
	if same(other.Labels, a.Labels) || other.Labels["tier"] != "front" {
		t.Errorf("a pod with other labels shares the template's: %v", other.Labels)
	}
	if &other.Spec.Tolerations[0] != &a.Spec.Tolerations[0] {
		t.Error("a pod whose tolerations are the template's does not share them")
	}
}

// TestTemplatePartsTableIsBounded: more distinct values than a table
// holds start it afresh instead of growing it.
func TestTemplatePartsTableIsBounded(t *testing.T) {
	var parts templateParts
	for i := range maxTemplateParts + 10 {
		parts.internMap(kindLabels, map[string]string{"i": fmt.Sprint(i)})
	}
	if n := len(parts.tables[kindLabels]); n > maxTemplateParts {
		t.Errorf("%d labels kept, want at most %d", n, maxTemplateParts)
	}
}

// TestPodCacheBytesPerPodOfOneTemplate: pods of one template cost less
// than decoded pods each on their own.
func TestPodCacheBytesPerPodOfOneTemplate(t *testing.T) {
	c := cachedAs(t)
	perPod := heapPerPod(2000, func(i int) *corev1.Pod {
		return transformed(t, c, decodePod(t, fmt.Sprintf("r%05d", i), "1", "pause:3.10", "Running"))
	})
	full := podBytes(t)
	t.Logf("a decoded pod on its own: %.0f B; a pod of a template through the cache: %.0f B", full, perPod)
	if perPod > 0.85*full {
		t.Errorf("a pod of a template costs %.0f B, one on its own %.0f B: its parts are not shared", perPod, full)
	}
}
