// Package translate turns a Kubernetes pod into a Flightctl application and
// a device's application status back into a pod status. It is pure: no I/O,
// no clocks, no Kubernetes or Flightctl clients. ConfigMaps and Secrets come
// in through a Resolver the caller implements, and time comes in as an
// argument, so every function here is deterministic and table-testable.
//
// # Pod to application
//
// ToApplication names the application AppName(pod) ("vk-<ns>-<name>-<hash>")
// and writes it in one of two formats:
//
//   - quadlet (default): "<app>.pod" (hostname, published ports),
//     "<app>-<container>.container" per container and
//     "<app>-<volume>.volume" per emptyDir. Requires podman 5.0 or newer
//     on the device (.pod units).
//   - compose: one podman-compose.yaml, a service per container; every
//     service but the first uses network_mode "service:<first>" so that
//     containers share localhost as in a pod.
//
// ConfigMap, Secret, downwardAPI and projected volumes become files under
// /var/lib/vk-flightctl/<app>/volumes/<volume>/ (Result.VolumeFiles) that
// the caller writes through Flightctl's inline config provider; containers
// bind-mount them read-only. Their contents, Secret values included, and
// environment variables resolved from Secrets therefore travel in the
// Flightctl device spec and are stored on the device.
//
// Honoured pod fields: containers (name, image, command, args, workingDir,
// ports, env, envFrom, resources.limits cpu/memory, volumeMounts incl.
// subPath of file volumes, securityContext), volumes (configMap, secret,
// emptyDir incl. medium Memory, downwardAPI, projected from those),
// restartPolicy, terminationGracePeriodSeconds, hostname, readinessGates
// (in status), securityContext runAsUser/runAsGroup/runAsNonRoot (only with
// a non-zero runAsUser, which can be checked without the image),
// supplementalGroups, fsGroup (only without volumes), RuntimeDefault
// seccomp/AppArmor profiles, os linux. Container securityContext:
// capabilities.drop, readOnlyRootFilesystem, allowPrivilegeEscalation=false,
// privileged=false.
//
// Env follows Kubernetes: envFrom first, then env; $(VAR) is expanded in env
// values, command and args; optional references that are missing are
// skipped (Result.Warnings), required ones fail with ErrMissingReference.
// The downward API offers metadata.name/namespace/uid/labels/annotations,
// spec.nodeName, spec.serviceAccountName, status.podIP/hostIP (the device
// IP) and resourceFieldRef (unset limits fall back to
// Options.Allocatable).
//
// Knowingly ignored (not enforced on the device):
//   - probes (liveness, readiness, startup): readiness is what the
//     Flightctl agent reports; no probe is run;
//   - scheduling fields (nodeSelector, affinity, tolerations, priority,
//     topologySpreadConstraints, schedulingGates, overhead, schedulerName):
//     placement has already happened;
//   - resource requests (cpu, memory, ephemeral-storage): scheduling only;
//   - imagePullPolicy: the agent pulls missing images before starting;
//   - imagePullSecrets: devices use their own registry credentials;
//   - serviceAccountName/automountServiceAccountToken and the injected
//     kube-api-access-* volume: devices cannot reach the API server, so no
//     token is shipped;
//   - dnsPolicy, subdomain, enableServiceLinks: there is no cluster DNS or
//     Service network on a device;
//   - emptyDir sizeLimit on disk (Kubernetes only uses it for eviction),
//     terminationMessagePath/Policy, resizePolicy, fsGroupChangePolicy,
//     seLinuxChangePolicy, container port names.
//
// Deviations worth knowing: container ports are published on the device
// (hostPort, or the containerPort number when hostPort is unset) because a
// device has no pod network; podman's --read-only also mounts tmpfs on /tmp
// and /run; an empty file volume contains a hidden .vk-flightctl-empty file
// so that its directory exists.
//
// Sizes and quantities Kubernetes accepts but the path to a device does not
// are refused with *UnsupportedError too, before anything is written: a
// generated inline file or volume file over MaxInlineFileBytes (Flightctl's
// limit), an argument or NAME=value over 128 KiB (Linux's MAX_ARG_STRLEN),
// a memory limit under 1Mi (nothing starts; "500m" is half a byte). CPU
// limits under 10m are raised to 10m, as the kubelet does, because the
// kernel enforces no smaller quota; limits beyond any device (over 1M CPUs,
// over 8 EiB) are left out, which means unlimited.
//
// Everything else that is set fails with *UnsupportedError naming the field:
// initContainers (not yet), ephemeralContainers, hostNetwork/hostPID/hostIPC,
// privileged, capabilities.add, non-default procMount, seccomp/AppArmor
// profiles other than RuntimeDefault, SELinux options, sysctls, hostUsers
// false, shareProcessNamespace, lifecycle hooks, volumeDevices, stdin/tty,
// per-container restart policies, activeDeadlineSeconds, hostAliases,
// dnsConfig, runtimeClassName, pod-level resources, resource claims, limits
// other than cpu/memory, extended resources, volume types other than the
// five above, subPathExpr, subPath on emptyDir, mount propagation, and any
// field this version does not know (fields.go is the allow-list).
//
// # Injection safety
//
// Nothing from the pod is written into a unit file unescaped. Names are
// validated DNS labels; images, paths and numbers are checked against
// restricted alphabets; command arguments and environment assignments are
// double-quoted words with C escapes, so a newline can never start a new
// directive; '%' and '$' are doubled because systemd expands them in the
// generated ExecStart=. Values quadlet cannot carry faithfully (NUL, an
// empty argument, a lone ";", lines over 2000 bytes) are refused rather than
// altered. Compose files are marshalled from Go structs, and '$' is doubled
// to escape compose interpolation.
//
// # Application status to pod status
//
// PodStatus, DisconnectedStatus and Events map Flightctl's per-application
// status onto the pod; see PodStatus for the mapping.
package translate
