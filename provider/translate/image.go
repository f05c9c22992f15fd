package translate

import (
	"fmt"
	"regexp"
	"strings"
)

// defaultRegistry is where Docker-style short names live. Flightctl refuses
// short names in quadlet and compose applications because podman's
// short-name resolution on the device could silently pick another registry.
const defaultRegistry = "docker.io"

// qualifiedImage is the reference pattern the Flightctl v1.2 server applies
// to compose services and quadlet Image= keys (copied from its error
// messages): a registry host is mandatory. Anchored here because the server
// matches the whole value.
var qualifiedImage = regexp.MustCompile(`^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:[.](?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)*)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$`)

// NormalizeImage turns a Kubernetes image reference into the fully
// qualified form Flightctl requires, the way the Docker/containerd
// defaults would resolve it on a Kubernetes node:
//
//	nginx:alpine      -> docker.io/library/nginx:alpine
//	foo/bar           -> docker.io/foo/bar:latest
//	quay.io/x/y@sha.. -> unchanged (digests are kept, no tag is added)
//
// The first path component is a registry host when it contains '.' or ':'
// or is "localhost". References that would still not pass the server's
// check (upper case repositories, spaces, ...) are rejected, which also
// keeps them from carrying anything but reference characters into unit
// files.
func NormalizeImage(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("image is empty")
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
	}
	first, rest, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = defaultRegistry + "/" + name
	} else if rest == "" {
		return "", fmt.Errorf("image %q has an empty repository", ref)
	}
	out := name
	if tag != "" {
		out += ":" + tag
	} else if !hasDigest {
		out += ":latest"
	}
	if hasDigest {
		out += "@" + digest
	}
	if !qualifiedImage.MatchString(out) {
		return "", fmt.Errorf("image %q is not a valid image reference (normalized to %q)", ref, out)
	}
	return out, nil
}
