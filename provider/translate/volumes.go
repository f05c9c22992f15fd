package translate

import (
	"encoding/base64"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

const (
	// defaultFileMode is Kubernetes' default for ConfigMap, Secret,
	// downward API and projected volume files.
	defaultFileMode int32 = 0o644

	// emptyVolumeMarker keeps the host directory of a file volume that ends
	// up with no files (an optional ConfigMap that does not exist, an empty
	// Secret): podman refuses to bind-mount a missing directory, and
	// Flightctl only creates directories for the files it writes.
	emptyVolumeMarker = ".vk-flightctl-empty"

	// serviceAccountVolumePrefix names the projected volume the
	// ServiceAccount admission plugin adds to every pod. Devices cannot
	// reach the API server, so the token is not shipped to them.
	serviceAccountVolumePrefix = "kube-api-access-"
)

// safePathRE is the alphabet allowed in container paths and file names that
// end up inside quadlet Volume=/WorkingDir= values and compose volume
// strings. Those formats split on ':' and ',' and treat whitespace, quotes
// and backslashes specially, so anything outside this set is refused
// rather than escaped.
var safePathRE = regexp.MustCompile(`^[A-Za-z0-9._/@+-]+$`)

// VolumeFile is one file of a ConfigMap, Secret, downward API or projected
// volume. The caller writes it on the device through Flightctl's inline
// config provider (spec.config); the container bind-mounts its directory
// read-only. Note that this places the content, Secret values included, in
// the Flightctl device spec.
type VolumeFile struct {
	// Path is absolute on the device, under
	// /var/lib/vk-flightctl/<app>/volumes/<volume>/.
	Path string
	// Content is the raw file content.
	Content []byte
	// Mode holds the permission bits (defaultMode / items[].mode, 0644 by
	// default); the caller should set it on the inline file.
	Mode int32
}

// Inline converts the file to Flightctl's inline file form, using base64
// for content that is not valid UTF-8 text.
func (f VolumeFile) Inline() flightctl.InlineFile {
	if utf8.Valid(f.Content) {
		return flightctl.InlineFile{Path: f.Path, Content: string(f.Content)}
	}
	return flightctl.InlineFile{Path: f.Path, Content: base64.StdEncoding.EncodeToString(f.Content), ContentEncoding: "base64"}
}

type volumeKind int

const (
	volumeFiles volumeKind = iota + 1
	volumeEmptyDir
)

type volumePlan struct {
	name    string
	kind    volumeKind
	skip    bool   // the service account token volume
	hostDir string // volumeFiles
	files   map[string]bool
	memory  bool  // emptyDir medium Memory
	size    int64 // emptyDir sizeLimit in bytes, for memory volumes
}

type mount struct {
	source   string // host path (file volumes) or volume name (emptyDir)
	named    bool   // source is an emptyDir volume
	target   string
	readOnly bool
}

func isServiceAccountVolume(v *corev1.Volume) bool {
	if !strings.HasPrefix(v.Name, serviceAccountVolumePrefix) || v.Projected == nil {
		return false
	}
	for _, s := range v.Projected.Sources {
		if s.ServiceAccountToken != nil {
			return true
		}
	}
	return false
}

func (t *translator) planVolumes() error {
	t.volumes = map[string]*volumePlan{}
	for i := range t.pod.Spec.Volumes {
		v := &t.pod.Spec.Volumes[i]
		field := fmt.Sprintf("spec.volumes[%d]", i)
		if isServiceAccountVolume(v) {
			t.volumes[v.Name] = &volumePlan{name: v.Name, skip: true}
			continue
		}
		if !isDNSLabel(v.Name) {
			return unsupported(field+".name", "%q is not a valid volume name (DNS-1123 label)", v.Name)
		}
		if _, dup := t.volumes[v.Name]; dup {
			return unsupported(field+".name", "volume %q is defined twice", v.Name)
		}
		if err := checkFields(field, v); err != nil {
			return err
		}
		p, err := t.planVolume(field, v)
		if err != nil {
			return err
		}
		t.volumes[v.Name] = p
		t.volumeOrder = append(t.volumeOrder, v.Name)
	}
	return nil
}

func (t *translator) planVolume(field string, v *corev1.Volume) (*volumePlan, error) {
	if v.EmptyDir != nil {
		p := &volumePlan{name: v.Name, kind: volumeEmptyDir}
		switch v.EmptyDir.Medium {
		case corev1.StorageMediumDefault:
			// sizeLimit on disk is only an eviction threshold in
			// Kubernetes; podman volumes have none, so it is ignored.
		case corev1.StorageMediumMemory:
			p.memory = true
			if v.EmptyDir.SizeLimit != nil {
				p.size = v.EmptyDir.SizeLimit.Value()
			}
		default:
			return nil, unsupported(field+".emptyDir.medium", "medium %q is not supported; use \"\" or \"Memory\"", v.EmptyDir.Medium)
		}
		return p, nil
	}

	fs := &fileSet{t: t, dir: volumeHostDir(t.app, v.Name), files: map[string]VolumeFile{}}
	var err error
	switch {
	case v.ConfigMap != nil:
		s := v.ConfigMap
		err = fs.addObject(field+".configMap", "configmap", s.Name, s.Items, s.DefaultMode, deref(s.Optional))
	case v.Secret != nil:
		s := v.Secret
		err = fs.addObject(field+".secret", "secret", s.SecretName, s.Items, s.DefaultMode, deref(s.Optional))
	case v.DownwardAPI != nil:
		err = fs.addDownward(field+".downwardAPI", v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	case v.Projected != nil:
		for j, src := range v.Projected.Sources {
			sf := fmt.Sprintf("%s.projected.sources[%d]", field, j)
			switch {
			case src.ConfigMap != nil:
				err = fs.addObject(sf+".configMap", "configmap", src.ConfigMap.Name, src.ConfigMap.Items, v.Projected.DefaultMode, deref(src.ConfigMap.Optional))
			case src.Secret != nil:
				err = fs.addObject(sf+".secret", "secret", src.Secret.Name, src.Secret.Items, v.Projected.DefaultMode, deref(src.Secret.Optional))
			case src.DownwardAPI != nil:
				err = fs.addDownward(sf+".downwardAPI", src.DownwardAPI.Items, v.Projected.DefaultMode)
			default:
				err = unsupported(sf, "the projection has no source")
			}
			if err != nil {
				return nil, err
			}
		}
	default:
		return nil, unsupported(field, "the volume has no source; %s", volumeTypesReason)
	}
	if err != nil {
		return nil, err
	}
	p := &volumePlan{name: v.Name, kind: volumeFiles, hostDir: fs.dir, files: map[string]bool{}}
	if len(fs.files) == 0 {
		fs.files[emptyVolumeMarker] = VolumeFile{Path: fs.dir + "/" + emptyVolumeMarker, Mode: defaultFileMode}
	}
	for _, rel := range sortedKeys(fs.files) {
		p.files[rel] = true
		t.files = append(t.files, fs.files[rel])
	}
	return p, nil
}

// fileSet collects the files of one volume and refuses paths that would
// collide or escape the volume directory.
type fileSet struct {
	t     *translator
	dir   string
	files map[string]VolumeFile
}

func (fs *fileSet) add(field, rel string, content []byte, mode *int32, defaultMode *int32) error {
	if err := checkRelPath(field, rel); err != nil {
		return err
	}
	m := defaultFileMode
	if defaultMode != nil {
		m = *defaultMode
	}
	if mode != nil {
		m = *mode
	}
	if m < 0 || m > 0o777 {
		return unsupported(field+".mode", "mode %#o is outside 0-0777", m)
	}
	for other := range fs.files {
		if other == rel || strings.HasPrefix(other, rel+"/") || strings.HasPrefix(rel, other+"/") {
			return unsupported(field+".path", "%q collides with %q in the same volume", rel, other)
		}
	}
	if n := inlineSize(content); n > MaxInlineFileBytes {
		how := "as text"
		if n != len(content) {
			how = fmt.Sprintf("as base64, because it is binary (%d bytes raw)", len(content))
		}
		return unsupported(field, "file %q would be %d bytes in the Flightctl device spec (%s), more than the %d bytes Flightctl accepts in one inline file; ship it in the image or split it",
			rel, n, how, MaxInlineFileBytes)
	}
	fs.files[rel] = VolumeFile{Path: fs.dir + "/" + rel, Content: content, Mode: m}
	return nil
}

func (fs *fileSet) addObject(field, kind, name string, items []corev1.KeyToPath, defaultMode *int32, optional bool) error {
	obj, err := fs.t.lookupObject(field, kind, name, optional)
	if err != nil || obj == nil {
		return err
	}
	if len(items) == 0 {
		for _, key := range sortedKeys(obj.data) {
			if err := fs.add(field, key, obj.data[key], nil, defaultMode); err != nil {
				return err
			}
		}
		return nil
	}
	for j, it := range items {
		itemField := fmt.Sprintf("%s.items[%d]", field, j)
		content, ok := obj.data[it.Key]
		if !ok {
			if optional {
				fs.t.warnf("%s: %s %s/%s has no key %q; skipped because the volume is optional", itemField, kind, fs.t.pod.Namespace, name, it.Key)
				continue
			}
			return fmt.Errorf("%s: %s %s/%s has no key %q; add it or mark the volume optional: %w",
				itemField, kind, fs.t.pod.Namespace, name, it.Key, ErrMissingReference)
		}
		if err := fs.add(itemField, it.Path, content, it.Mode, defaultMode); err != nil {
			return err
		}
	}
	return nil
}

func (fs *fileSet) addDownward(field string, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) error {
	for j := range items {
		it := &items[j]
		itemField := fmt.Sprintf("%s.items[%d]", field, j)
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = fs.t.fieldRefValue(itemField+".fieldRef", it.FieldRef, true)
		case it.ResourceFieldRef != nil:
			value, err = fs.t.resourceFieldValue(itemField+".resourceFieldRef", it.ResourceFieldRef, nil)
		default:
			err = unsupported(itemField, "the item needs a fieldRef or resourceFieldRef")
		}
		if err != nil {
			return err
		}
		if err := fs.add(itemField, it.Path, []byte(value), it.Mode, defaultMode); err != nil {
			return err
		}
	}
	return nil
}

// checkRelPath enforces Kubernetes' rules for volume file paths (relative,
// no "..") again here, because the path is joined to a device directory.
func checkRelPath(field, rel string) error {
	switch {
	case rel == "" || len(rel) > 4096:
		return unsupported(field+".path", "file path %q is empty or too long", rel)
	case strings.HasPrefix(rel, "/") || path.Clean(rel) != rel:
		return unsupported(field+".path", "file path %q must be relative and clean", rel)
	case !utf8.ValidString(rel) || strings.ContainsFunc(rel, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return unsupported(field+".path", "file path %q contains control characters", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, "..") {
			return unsupported(field+".path", "file path %q must not contain elements starting with \"..\"", rel)
		}
	}
	return nil
}

// checkContainerPath validates an absolute path inside the container.
func checkContainerPath(field, p string) error {
	if !strings.HasPrefix(p, "/") || !safePathRE.MatchString(p) {
		return unsupported(field, "path %q must be absolute and use only letters, digits and . _ / @ + -", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return unsupported(field, "path %q must not contain \"..\"", p)
		}
	}
	return nil
}

func (t *translator) planMounts(ci int, c *corev1.Container) ([]mount, error) {
	var out []mount
	seen := map[string]bool{}
	for j := range c.VolumeMounts {
		m := &c.VolumeMounts[j]
		field := fmt.Sprintf("spec.containers[%d].volumeMounts[%d]", ci, j)
		vp, ok := t.volumes[m.Name]
		if !ok {
			return nil, unsupported(field+".name", "there is no volume named %q", m.Name)
		}
		if vp.skip {
			continue
		}
		if err := checkFields(field, m); err != nil {
			return nil, err
		}
		if err := checkContainerPath(field+".mountPath", m.MountPath); err != nil {
			return nil, err
		}
		target := path.Clean(m.MountPath)
		if seen[target] {
			return nil, unsupported(field+".mountPath", "%q is mounted twice", m.MountPath)
		}
		seen[target] = true
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			return nil, unsupported(field+".mountPropagation", "mount propagation %q is not supported", *m.MountPropagation)
		}
		if m.RecursiveReadOnly != nil && *m.RecursiveReadOnly != corev1.RecursiveReadOnlyDisabled {
			return nil, unsupported(field+".recursiveReadOnly", "recursive read-only mounts are not supported")
		}
		switch vp.kind {
		case volumeEmptyDir:
			if m.SubPath != "" {
				return nil, unsupported(field+".subPath", "subPath is only supported for configMap, secret, downwardAPI and projected volumes")
			}
			out = append(out, mount{source: vp.name, named: true, target: target, readOnly: m.ReadOnly})
		case volumeFiles:
			src := vp.hostDir
			if m.SubPath != "" {
				if !vp.files[m.SubPath] || !safePathRE.MatchString(m.SubPath) {
					return nil, unsupported(field+".subPath", "subPath %q must name one file of volume %q", m.SubPath, m.Name)
				}
				src += "/" + m.SubPath
			}
			// Kubernetes mounts these volumes read-only whatever the
			// mount says.
			out = append(out, mount{source: src, target: target, readOnly: true})
		}
	}
	return out, nil
}
