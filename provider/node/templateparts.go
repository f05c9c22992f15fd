package node

import (
	"encoding/binary"
	"maps"
	"reflect"
	"slices"
	"sync"
	"unique"

	corev1 "k8s.io/api/core/v1"
)

// maxTemplateParts bounds how many distinct values of one kind
// templateParts keeps. A full table starts afresh: the values pods still
// use stay alive through those pods, and the next pods of a template
// share from the new table.
const maxTemplateParts = 1024

// partKind names a table of templateParts.
type partKind uint8

const (
	kindResources partKind = iota
	kindEnv
	kindEnvFrom
	kindPorts
	kindCommand
	kindArgs
	kindProbe
	kindLifecycle
	kindContainerSecurity
	kindTolerations
	kindNodeSelector
	kindAffinity
	kindPodSecurity
	kindSpread
	kindPullSecrets
	kindProjected
	kindConfigMapVolume
	kindSecretVolume
	kindLabels
)

// templateParts keeps one copy of each distinct spec part the pods of one
// template carry identically, so that a thousand replicas hold one set of
// resources, one environment, one set of probes and tolerations instead of
// a thousand: at 10,000 pods the pods' decoded specs are most of the
// manager's memory. Nobody writes to an informer's objects (client-go's
// contract, which the provider keeps by copying before it changes
// anything), so a part shared between pods is as safe as one shared
// between versions of one pod.
//
// A part is looked up by its protobuf encoding, which is deterministic
// (map keys sorted), and shared only when reflect.DeepEqual to the kept
// copy, so a pod reads exactly what it was decoded with.
type templateParts struct {
	mu     sync.Mutex
	tables map[partKind]map[string]any
}

// internSpec points spec's parts at the kept copies of equal parts, and
// keeps the ones not seen yet.
func (t *templateParts) internSpec(s *corev1.PodSpec) {
	for i := range s.Containers {
		t.internContainer(&s.Containers[i])
	}
	for i := range s.InitContainers {
		t.internContainer(&s.InitContainers[i])
	}
	s.Tolerations = internSlice(t, kindTolerations, s.Tolerations)
	s.NodeSelector = t.internMap(kindNodeSelector, s.NodeSelector)
	s.Affinity = internPtr(t, kindAffinity, s.Affinity)
	s.SecurityContext = internPtr(t, kindPodSecurity, s.SecurityContext)
	s.TopologySpreadConstraints = internSlice(t, kindSpread, s.TopologySpreadConstraints)
	s.ImagePullSecrets = internSlice(t, kindPullSecrets, s.ImagePullSecrets)
	for i := range s.Volumes {
		// The volume's name differs per pod (kube-api-access-<random>),
		// its source does not.
		v := &s.Volumes[i]
		v.Projected = internPtr(t, kindProjected, v.Projected)
		v.ConfigMap = internPtr(t, kindConfigMapVolume, v.ConfigMap)
		v.Secret = internPtr(t, kindSecretVolume, v.Secret)
	}
}

func (t *templateParts) internContainer(c *corev1.Container) {
	c.Image = unique.Make(c.Image).Value()
	if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 || len(c.Resources.Claims) > 0 {
		c.Resources = *internPtr(t, kindResources, &c.Resources)
	}
	c.Env = internSlice(t, kindEnv, c.Env)
	c.EnvFrom = internSlice(t, kindEnvFrom, c.EnvFrom)
	c.Ports = internSlice(t, kindPorts, c.Ports)
	c.Command = t.internStrings(kindCommand, c.Command)
	c.Args = t.internStrings(kindArgs, c.Args)
	c.LivenessProbe = internPtr(t, kindProbe, c.LivenessProbe)
	c.ReadinessProbe = internPtr(t, kindProbe, c.ReadinessProbe)
	c.StartupProbe = internPtr(t, kindProbe, c.StartupProbe)
	c.Lifecycle = internPtr(t, kindLifecycle, c.Lifecycle)
	c.SecurityContext = internPtr(t, kindContainerSecurity, c.SecurityContext)
}

// pbMessage is a Kubernetes API type's generated protobuf encoder.
type pbMessage interface {
	Marshal() ([]byte, error)
}

// internPtr returns the kept part equal to *p, or keeps p. A value field
// is passed by address; the table then keeps a copy of the struct (its
// maps and slices, not the pod around it).
func internPtr[T any, P interface {
	*T
	pbMessage
}](t *templateParts, kind partKind, p P) P {
	if p == nil {
		return nil
	}
	key, err := p.Marshal()
	if err != nil {
		return p
	}
	if kept, ok := t.lookup(kind, key, func() any { cp := *p; return P(&cp) }, func(v any) bool { return reflect.DeepEqual(v, p) }); ok {
		return kept.(P)
	}
	return p
}

// internSlice returns the kept slice equal to xs, or keeps xs.
func internSlice[T any, P interface {
	*T
	pbMessage
}](t *templateParts, kind partKind, xs []T) []T {
	if len(xs) == 0 {
		return xs
	}
	var key []byte
	for i := range xs {
		b, err := P(&xs[i]).Marshal()
		if err != nil {
			return xs
		}
		key = binary.AppendUvarint(key, uint64(len(b)))
		key = append(key, b...)
	}
	if kept, ok := t.lookup(kind, key, func() any { return xs }, func(v any) bool { return reflect.DeepEqual(v, xs) }); ok {
		return kept.([]T)
	}
	return xs
}

// internStrings returns the kept slice equal to xs, or keeps xs.
func (t *templateParts) internStrings(kind partKind, xs []string) []string {
	if len(xs) == 0 {
		return xs
	}
	var key []byte
	for _, s := range xs {
		key = binary.AppendUvarint(key, uint64(len(s)))
		key = append(key, s...)
	}
	if kept, ok := t.lookup(kind, key, func() any { return xs }, func(v any) bool { return slices.Equal(v.([]string), xs) }); ok {
		return kept.([]string)
	}
	return xs
}

// internMap returns the kept map equal to m, or keeps m.
func (t *templateParts) internMap(kind partKind, m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	var key []byte
	for _, k := range slices.Sorted(maps.Keys(m)) {
		key = binary.AppendUvarint(key, uint64(len(k)))
		key = append(key, k...)
		key = binary.AppendUvarint(key, uint64(len(m[k])))
		key = append(key, m[k]...)
	}
	if kept, ok := t.lookup(kind, key, func() any { return m }, func(v any) bool { return reflect.DeepEqual(v, m) }); ok {
		return kept.(map[string]string)
	}
	return m
}

// lookup returns the value kept under key and true when equal says it
// is the caller's. A new key keeps keep()'s value and returns it; a key
// held by an unequal value (not expected of a deterministic encoding, but
// not trusted either) returns false: the caller keeps its own.
func (t *templateParts) lookup(kind partKind, key []byte, keep func() any, equal func(any) bool) (any, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tables[kind]
	if tab == nil {
		if t.tables == nil {
			t.tables = map[partKind]map[string]any{}
		}
		tab = map[string]any{}
		t.tables[kind] = tab
	}
	if kept, ok := tab[string(key)]; ok {
		return kept, equal(kept)
	}
	if len(tab) >= maxTemplateParts {
		clear(tab)
	}
	v := keep()
	tab[string(key)] = v
	return v, true
}
