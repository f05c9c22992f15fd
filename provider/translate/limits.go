package translate

import (
	"encoding/base64"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Limits of the systems a pod passes through on its way to a device that
// Kubernetes does not share. A pod beyond them is refused here, with the
// field to change, instead of by the Flightctl server (which would refuse
// the whole device write, other pods' changes batched with it included) or
// by the device (where it fails without a message that reaches the pod).

// MaxInlineFileBytes is the most the Flightctl server accepts in one inline
// file, of an application (spec.applications[].inline[].content) or of the
// inline config provider (spec.config[].inline[].content): 1 MiB, counted
// on the content as sent, that is on the base64 text for base64 content.
const MaxInlineFileBytes = 1 << 20

// maxExecString is Linux's MAX_ARG_STRLEN: execve(2) fails with E2BIG when
// one argument or one "NAME=value" environment string, with its
// terminating NUL, is longer, so no container process can receive it.
const maxExecString = 32 * 4096

// minCPUMilli is the smallest CPU limit a device can enforce. The kernel
// refuses CFS quotas under 1 ms per 100 ms period (0.01 CPU), so the
// kubelet raises smaller limits to it; so does this package.
const minCPUMilli = 10

// maxCPULimit bounds CPU limits that are written at all. A limit above it
// exceeds every device, so it means "unlimited", which is what leaving it
// out says; written, a large enough one gives a quota the kernel refuses,
// and beyond int64 milli-units the quantity cannot even be read exactly.
var maxCPULimit = resource.MustParse("1M")

// minMemoryLimit is the smallest memory limit accepted. The container's
// first process, and the runtime setting it up, are charged to the limit,
// so a container cannot start under one this small: it would fail on the
// device, out of sight, with an out-of-memory kill. Such limits are nearly
// always unit mistakes ("500m" is half a byte, "1Ki" a kibibyte).
var minMemoryLimit = resource.MustParse("1Mi")

// maxMemoryLimit is the largest memory limit that can be read as int64
// bytes. Larger limits exceed every device and are left out (unlimited).
var maxMemoryLimit = *resource.NewQuantity(math.MaxInt64, resource.BinarySI)

// planCPULimit returns the podman --cpus value for a CPU limit, "" for none.
func planCPULimit(q resource.Quantity) string {
	switch {
	case q.Sign() <= 0, q.Cmp(maxCPULimit) > 0:
		return ""
	case q.MilliValue() < minCPUMilli:
		return formatMilli(minCPUMilli)
	default:
		return formatMilli(q.MilliValue())
	}
}

// planMemoryLimit returns the podman --memory value (bytes) for a memory
// limit, "" for none.
func planMemoryLimit(field string, q resource.Quantity) (string, error) {
	switch {
	case q.Sign() <= 0, q.Cmp(maxMemoryLimit) > 0:
		return "", nil
	case q.Cmp(minMemoryLimit) < 0:
		hint := ""
		if s, ok := strings.CutSuffix(q.String(), "m"); ok {
			hint = fmt.Sprintf("; the suffix m means thousandths of a byte: for mebibytes write %sMi", s)
		}
		size := fmt.Sprintf("%d bytes", q.Value())
		if q.Value() == 1 {
			size = "1 byte"
		}
		return "", unsupported(field, "memory limit %s is %s, less than the %s a container needs to start%s",
			q.String(), size, minMemoryLimit.String(), hint)
	default:
		return strconv.FormatInt(q.Value(), 10), nil
	}
}

// checkExecString refuses an argument or environment string the kernel
// would refuse to pass to the container's process.
func checkExecString(field, what string, n int) error {
	if n+1 > maxExecString {
		return unsupported(field, "%s is %d bytes; Linux refuses to start a process with a single argument or environment string over %d bytes (MAX_ARG_STRLEN); put large values in a ConfigMap or Secret volume",
			what, n, maxExecString-1)
	}
	return nil
}

// checkInlineSizes refuses a rendered application with a file the
// Flightctl server would refuse for its size, naming the pod field that
// makes it large.
func checkInlineSizes(p *podPlan, app flightctl.ApplicationSpec) error {
	for _, f := range app.Inline {
		if len(f.Content) <= MaxInlineFileBytes {
			continue
		}
		field, fix := "spec.containers", "use the quadlet format (one file per container) or move large values into ConfigMap or Secret volumes"
		for _, c := range p.containers {
			if f.Path == containerUnitName(p.app, c.name) {
				field = fmt.Sprintf("spec.containers[%d]", c.index)
				fix = "move large values, environment above all, into ConfigMap or Secret volumes"
			}
		}
		return unsupported(field, "the generated %s is %d bytes, more than the %d bytes Flightctl accepts in one inline file; %s",
			path.Base(f.Path), len(f.Content), MaxInlineFileBytes, fix)
	}
	return nil
}

// inlineSize is the size a volume file has in the device spec: as is for
// UTF-8 text, base64 (4/3 larger) otherwise; see VolumeFile.Inline.
func inlineSize(content []byte) int {
	if utf8.Valid(content) {
		return len(content)
	}
	return base64.StdEncoding.EncodedLen(len(content))
}
