package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

const (
	// AppNamePrefix marks Flightctl applications owned by vk-flightctl; the
	// provider never touches applications without it.
	AppNamePrefix = "vk-"

	// appHashLen is the number of hex characters of sha256(pod UID) that end
	// every application name. Ten characters (40 bits) make an accidental
	// clash between two live pods on one device practically impossible
	// while leaving room for a readable namespace and name.
	appHashLen = 10

	// maxAppNameLen keeps application names valid DNS-1123 labels. The
	// server would accept longer names, but the name is reused for unit
	// files, podman objects and directories where a label is the safe size.
	maxAppNameLen = 63

	// DeviceDataDir is the directory on the device under which the caller
	// writes per-application files (ConfigMap, Secret and downward API
	// volume contents) through Flightctl's inline config provider.
	DeviceDataDir = "/var/lib/vk-flightctl"
)

var (
	dns1123Label   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	ownedHashShape = regexp.MustCompile(`-[0-9a-f]{10}$`)
)

// AppName returns the Flightctl application name for a pod:
// "vk-<namespace>-<name>-<hash>", where <hash> is the first ten hex digits of
// the SHA-256 of the pod UID. The "<namespace>-<name>" part is lower-cased,
// stripped of characters a DNS label cannot hold and cut so that the whole
// name is at most 63 characters. Because the hash comes from the UID, two
// pods whose names only differ past the cut, or a pod re-created with the
// same name, still get distinct applications.
func AppName(pod *corev1.Pod) string {
	sum := sha256.Sum256([]byte(pod.UID))
	hash := hex.EncodeToString(sum[:])[:appHashLen]

	middle := sanitizeLabelPart(pod.Namespace + "-" + pod.Name)
	budget := maxAppNameLen - len(AppNamePrefix) - 1 - appHashLen
	if len(middle) > budget {
		middle = middle[:budget]
	}
	middle = strings.Trim(middle, "-")
	if middle == "" {
		return AppNamePrefix + hash
	}
	return AppNamePrefix + middle + "-" + hash
}

// sanitizeLabelPart maps s onto the DNS-label alphabet. Kubernetes already
// restricts namespaces and names, but pod names may contain dots and the
// function must stay total for any input.
func sanitizeLabelPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// IsOwnedAppName reports whether an application found in a device spec was
// created by vk-flightctl: it must start with "vk-", end with "-" and ten
// lowercase hex digits, and be a valid DNS-1123 label. Applications that do
// not match are left alone.
func IsOwnedAppName(name string) bool {
	return len(name) <= maxAppNameLen &&
		strings.HasPrefix(name, AppNamePrefix) &&
		ownedHashShape.MatchString(name) &&
		dns1123Label.MatchString(name)
}

// AppDataDir is the device directory holding an application's volume files.
// Callers remove it together with the application.
func AppDataDir(appName string) string {
	return DeviceDataDir + "/" + appName
}

func volumeHostDir(appName, volume string) string {
	return AppDataDir(appName) + "/volumes/" + volume
}

func isDNSLabel(s string) bool {
	return len(s) <= 63 && dns1123Label.MatchString(s)
}

// isDNSSubdomain checks a Kubernetes object name (pod names may contain
// dots).
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !dns1123Label.MatchString(part) {
			return false
		}
	}
	return true
}
