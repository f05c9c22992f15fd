// Package settings resolves the effective settings of a FleetBinding from
// its spec, the manager-wide vk-flightctl-config ConfigMap, and built-in
// defaults, in that order of precedence.
package settings

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// ConfigMapName is the manager-wide settings ConfigMap the quickstart names.
const ConfigMapName = "vk-flightctl-config"

// Keys of the settings ConfigMap.
const (
	KeyReconnectTimeout   = "reconnectTimeout"
	KeyStatusPollInterval = "statusPollInterval"
	KeyDeployDeadline     = "deployDeadline"
	// KeyFullResyncInterval is how often the whole device listing is read
	// again (docs/polling.md).
	KeyFullResyncInterval = "fullResyncInterval"
)

// Built-in defaults, used when neither the binding nor the ConfigMap says.
const (
	DefaultReconnectTimeout   = 5 * time.Minute
	DefaultStatusPollInterval = 5 * time.Second
	DefaultDeployDeadline     = 10 * time.Minute
	// DefaultFullResyncInterval is the Flightctl agent's default status
	// period: a settled device reports nothing new more often than that,
	// so a full listing more often mostly re-reads what is known.
	DefaultFullResyncInterval = 60 * time.Second
)

// Minimums the ConfigMap values are held to, matching the CRD's validation.
const (
	MinReconnectTimeout   = 10 * time.Second
	MinStatusPollInterval = time.Second
	MinDeployDeadline     = 5 * time.Second
	MinFullResyncInterval = 10 * time.Second
)

// Defaults are the manager-wide values read from the ConfigMap.
type Defaults struct {
	ReconnectTimeout   time.Duration
	StatusPollInterval time.Duration
	DeployDeadline     time.Duration
	FullResyncInterval time.Duration
}

// Effective are the values a binding runs with.
type Effective struct {
	ReconnectTimeout   time.Duration
	StatusPollInterval time.Duration
	DeployDeadline     time.Duration
	// FullResyncInterval is how often every device is listed; between
	// resyncs only hot devices, events and unhealthy devices are read.
	FullResyncInterval time.Duration
}

// Builtin returns the defaults used without a ConfigMap.
func Builtin() Defaults {
	return Defaults{ReconnectTimeout: DefaultReconnectTimeout, StatusPollInterval: DefaultStatusPollInterval, DeployDeadline: DefaultDeployDeadline,
		FullResyncInterval: DefaultFullResyncInterval}
}

// Load reads the ConfigMap from namespace. A missing ConfigMap gives the
// built-in defaults; a malformed value is an error naming the key, and the
// other keys still apply so one typo does not reset everything.
func Load(ctx context.Context, c client.Reader, namespace string) (Defaults, error) {
	d := Builtin()
	var cm corev1.ConfigMap
	err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, ConfigMapName, err)
	}
	return Parse(cm.Data)
}

// Parse turns ConfigMap data into Defaults.
func Parse(data map[string]string) (Defaults, error) {
	d := Builtin()
	var firstErr error
	set := func(key string, min time.Duration, dst *time.Duration) {
		v, ok := data[key]
		if !ok || v == "" {
			return
		}
		parsed, err := time.ParseDuration(v)
		switch {
		case err != nil:
			err = fmt.Errorf("ConfigMap %s key %s: %q is not a duration (want e.g. 5m or 30s)", ConfigMapName, key, v)
		case parsed < min:
			err = fmt.Errorf("ConfigMap %s key %s: %s is below the minimum %s", ConfigMapName, key, parsed, min)
		default:
			*dst = parsed
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	set(KeyReconnectTimeout, MinReconnectTimeout, &d.ReconnectTimeout)
	set(KeyStatusPollInterval, MinStatusPollInterval, &d.StatusPollInterval)
	set(KeyDeployDeadline, MinDeployDeadline, &d.DeployDeadline)
	set(KeyFullResyncInterval, MinFullResyncInterval, &d.FullResyncInterval)
	return d, firstErr
}

// For resolves a binding's effective settings.
func For(b *vkv1.FleetBinding, d Defaults) Effective {
	e := Effective(d)
	if b.Spec.ReconnectTimeout != nil {
		e.ReconnectTimeout = b.Spec.ReconnectTimeout.Duration
	}
	if b.Spec.StatusPollInterval != nil {
		e.StatusPollInterval = b.Spec.StatusPollInterval.Duration
	}
	if b.Spec.DeployDeadline != nil {
		e.DeployDeadline = b.Spec.DeployDeadline.Duration
	}
	if b.Spec.FullResyncInterval != nil {
		e.FullResyncInterval = b.Spec.FullResyncInterval.Duration
	}
	return e
}
