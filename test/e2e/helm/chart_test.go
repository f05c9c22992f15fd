package helm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// The specs follow one release through its life, hence Ordered: the
// comparison needs no cluster, the rest use the release BeforeSuite
// installed, and the last two uninstall and reinstall it.
var _ = Describe("Helm chart", Ordered, func() {
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			dumpLogs()
		}
	})

	It("renders with default values what kustomize build config/default renders", func(ctx SpecContext) {
		chartOut, err := helmOutput(ctx, "template", release, chart, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		// kubectl's built-in kustomize: no other binary needed.
		kustOut, err := kubectl(ctx, "kustomize", filepath.Join(root, "config", "default"))
		Expect(err).NotTo(HaveOccurred())
		fromChart, err := objectsByKey(chartOut)
		Expect(err).NotTo(HaveOccurred())
		fromKust, err := objectsByKey(kustOut)
		Expect(err).NotTo(HaveOccurred())
		// Helm installs into the release namespace (--create-namespace).
		delete(fromKust, "Namespace/"+namespace)

		// The Deployment first, field by field, so a failure names what
		// differs: the chart's pod must be the kustomize pod.
		chartDep, err := toDeployment(fromChart["Deployment/vk-flightctl-provider"])
		Expect(err).NotTo(HaveOccurred(), "the chart's Deployment")
		kustDep, err := toDeployment(fromKust["Deployment/vk-flightctl-provider"])
		Expect(err).NotTo(HaveOccurred(), "the kustomize Deployment")
		cc, kc := chartDep.Spec.Template.Spec.Containers[0], kustDep.Spec.Template.Spec.Containers[0]
		Expect(cc.Args).To(Equal(kc.Args), "args")
		Expect(cc.Env).To(Equal(kc.Env), "env")
		Expect(cc.LivenessProbe).To(Equal(kc.LivenessProbe), "liveness probe")
		Expect(cc.ReadinessProbe).To(Equal(kc.ReadinessProbe), "readiness probe")
		Expect(cc.SecurityContext).To(Equal(kc.SecurityContext), "container security context")
		Expect(chartDep.Spec.Template.Spec.SecurityContext).To(Equal(kustDep.Spec.Template.Spec.SecurityContext), "pod security context")
		Expect(cc.Resources).To(Equal(kc.Resources), "resources")
		Expect(cc.Ports).To(Equal(kc.Ports), "ports")
		appVersion := chartAppVersion()
		repo, _, _ := strings.Cut(kc.Image, ":")
		Expect(cc.Image).To(Equal(repo+":"+appVersion), "image: kustomize's repository, the chart's appVersion as tag")
		fmt.Fprintf(GinkgoWriter, "Deployment: args %v, %d env vars, probes, security contexts, resources and ports equal kustomize's; image %s (kustomize %s)\n",
			cc.Args, len(cc.Env), cc.Image, kc.Image)

		// Then every object whole, once Helm's additions are taken off.
		for _, o := range fromChart {
			stripHelm(o, appVersion)
		}
		for _, o := range fromKust {
			stripHelm(o, appVersion)
		}
		Expect(sortedKeys(fromChart)).To(Equal(sortedKeys(fromKust)), "the same objects")
		for k := range fromKust {
			Expect(fromChart[k]).To(Equal(fromKust[k]), "%s differs between the chart and kustomize", k)
		}
		fmt.Fprintf(GinkgoWriter, "the chart renders %s as kustomize does\n", strings.Join(sortedKeys(fromChart), ", "))
	})

	It("installed the chart's objects, labelled for the release", func(ctx SpecContext) {
		Expect(installOutput).To(ContainSubstring("STATUS: deployed"))
		Expect(installOutput).To(ContainSubstring("kubectl create secret generic flightctl-credentials"), "NOTES.txt shows the sample")
		status, err := helmOutput(ctx, "status", release, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(ContainSubstring("STATUS: deployed"))
		manifest, err := helmOutput(ctx, "get", "manifest", release, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		objs, err := objectsByKey(manifest)
		Expect(err).NotTo(HaveOccurred())
		rendered, err := helmOutput(ctx, append([]string{"template", release, chart, "-n", namespace}, installValues...)...)
		Expect(err).NotTo(HaveOccurred())
		want, err := objectsByKey(rendered)
		Expect(err).NotTo(HaveOccurred())
		Expect(sortedKeys(objs)).To(Equal(sortedKeys(want)), "the release holds what the chart renders")
		Expect(objs).To(HaveKey("CustomResourceDefinition/fleetbindings.vk.flightctl.io"))
		Expect(objs).To(HaveKey("Deployment/vk-flightctl-provider"))
		for _, k := range sortedKeys(objs) {
			kind, name, _ := strings.Cut(k, "/")
			out, err := kubectl(ctx, "get", kind, name, "-n", namespace, "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/instance}")
			Expect(err).NotTo(HaveOccurred(), k)
			Expect(out).To(Equal(release), "%s is labelled app.kubernetes.io/instance=%s", k, release)
		}
		replicas, err := kubectl(ctx, "get", "deployment", "vk-flightctl-provider", "-n", namespace, "-o", "jsonpath={.spec.replicas}")
		Expect(err).NotTo(HaveOccurred())
		Expect(replicas).To(Equal("0"), "installed scaled to zero: the manager runs as a process")
	})

	It("runs the manager with the chart's ServiceAccount, RBAC and ConfigMap: the FleetBinding's node is Ready", func(ctx SpecContext) {
		// The manager's own view: its namespace and leader election come
		// from the chart (--leader-elect is one of the chart's args).
		start := startLine(stack.ManagerLog)
		Expect(start).NotTo(BeNil(), "the manager logged Provider starting")
		Expect(start["namespace"]).To(Equal(namespace))
		Expect(start["leaderElection"]).To(BeTrue())
		holder, err := kubectl(ctx, "get", "lease", "vk-flightctl-provider", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}")
		Expect(err).NotTo(HaveOccurred(), "the leader Lease, which the chart's Role lets the manager write")
		Expect(holder).NotTo(BeEmpty())

		node := stack.NodeName()
		ready, err := kubectl(ctx, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		Expect(err).NotTo(HaveOccurred())
		Expect(ready).To(Equal("True"), "node %s Ready", node)
		Eventually(func() (string, error) {
			return kubectl(ctx, "get", "fleetbinding", quickstart.DefaultFleet, "-n", quickstart.DefaultBindingNamespace,
				"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(time.Second).Should(Equal("True"), "FleetBinding Ready")

		// The ServiceAccount holds what the manager needs and no more.
		sa := "system:serviceaccount:" + namespace + ":vk-flightctl-provider"
		for _, c := range []struct {
			verb, resource, subresource, ns, want string
		}{
			{"create", "nodes", "", "", "yes"},
			{"patch", "pods", "status", "", "yes"},
			// The placement record rides on the status write.
			{"patch", "pods", "", "", "no"},
			{"update", "leases.coordination.k8s.io", "", namespace, "yes"},
			{"get", "secrets", "", quickstart.DefaultBindingNamespace, "yes"},
			// list/watch back a metadata-only watch of credentials Secrets.
			{"list", "secrets", "", quickstart.DefaultBindingNamespace, "yes"},
			{"create", "pods", "", quickstart.DefaultBindingNamespace, "no"},
		} {
			args := []string{"auth", "can-i", c.verb, c.resource, "--as", sa}
			if c.subresource != "" {
				args = append(args, "--subresource", c.subresource)
			}
			if c.ns != "" {
				args = append(args, "-n", c.ns)
			}
			out, _ := kubectl(ctx, args...) // "no" exits 1
			Expect(strings.TrimSpace(out)).To(Equal(c.want), "kubectl %s", strings.Join(args, " "))
		}

		// The ConfigMap is the chart's: a value below the minimum, set by
		// helm upgrade, is reported on the binding within seconds (the
		// manager watches the ConfigMap), and set back.
		out, err := helmOutput(ctx, "upgrade", release, chart, "-n", namespace, "--reuse-values", "--set", "config.statusPollInterval=100ms", "--wait")
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "$ helm upgrade %s dist/chart -n %s --reuse-values --set config.statusPollInterval=100ms\n%s\n", release, namespace, indent(firstLines(out, 6)))
		Eventually(func() (string, error) {
			return kubectl(ctx, "get", "events", "-n", quickstart.DefaultBindingNamespace,
				"--field-selector", "reason=InvalidSettings,involvedObject.name="+quickstart.DefaultFleet, "-o", "jsonpath={.items[*].message}")
		}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(time.Second).Should(
			ContainSubstring("statusPollInterval: 100ms is below the minimum 1s"), "InvalidSettings event naming the chart's ConfigMap value")
		_, err = helmOutput(ctx, "upgrade", release, chart, "-n", namespace, "--reuse-values", "--set", "config.statusPollInterval=5s", "--wait")
		Expect(err).NotTo(HaveOccurred())
		cm, err := kubectl(ctx, "get", "configmap", "vk-flightctl-config", "-n", namespace, "-o", "jsonpath={.data.statusPollInterval}")
		Expect(err).NotTo(HaveOccurred())
		Expect(cm).To(Equal("5s"))
	}, SpecTimeout(4*time.Minute))

	It("serves the kubelet API with the certificate of kubeletTLS.secretName", func(ctx SpecContext) {
		port, err := kubectl(ctx, "get", "node", stack.NodeName(), "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}")
		Expect(err).NotTo(HaveOccurred())
		served, err := servedCertificate(ctx, "127.0.0.1:"+strings.TrimSpace(port))
		Expect(err).NotTo(HaveOccurred())
		want, err := certDER(kubeletCertPEM)
		Expect(err).NotTo(HaveOccurred())
		Expect(served).To(Equal(want), "the node's kubelet endpoint presents the certificate of Secret %s/%s, mounted where the chart's args point", namespace, kubeletSecret)
		fmt.Fprintf(GinkgoWriter, "kubelet API on 127.0.0.1:%s presents the certificate of Secret %s/%s\n", strings.TrimSpace(port), namespace, kubeletSecret)
	})

	It("helm uninstall leaves nothing behind but the CRD the chart keeps", func(ctx SpecContext) {
		// First what the chart does not own: the binding (its finalizer
		// needs the manager to remove the node), then the manager.
		_, err := kubectl(ctx, "delete", "fleetbinding", quickstart.DefaultFleet, "-n", quickstart.DefaultBindingNamespace, "--wait", "--timeout=90s")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() (string, error) {
			return kubectl(ctx, "get", "node", stack.NodeName(), "--ignore-not-found", "-o", "name")
		}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(time.Second).Should(BeEmpty(), "the node goes with its binding")
		Expect(stack.StopManager("")).To(Succeed())

		manifest, err := helmOutput(ctx, "get", "manifest", release, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		objs, err := objectsByKey(manifest)
		Expect(err).NotTo(HaveOccurred())
		out, err := helmOutput(ctx, "uninstall", release, "-n", namespace, "--wait", "--timeout", "2m")
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "$ helm uninstall %s -n %s --wait\n%s\n", release, namespace, indent(out))
		Expect(out).To(ContainSubstring("These resources were kept due to the resource policy:"))
		Expect(out).To(ContainSubstring("[CustomResourceDefinition] fleetbindings.vk.flightctl.io"))

		for _, k := range sortedKeys(objs) {
			kind, name, _ := strings.Cut(k, "/")
			left, err := kubectl(ctx, "get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name")
			Expect(err).NotTo(HaveOccurred(), k)
			if kind == "CustomResourceDefinition" {
				Expect(left).NotTo(BeEmpty(), "%s is kept (helm.sh/resource-policy: keep)", k)
				continue
			}
			Expect(left).To(BeEmpty(), "%s is gone after helm uninstall", k)
		}
		releases, err := helmOutput(ctx, "list", "-n", namespace, "--all", "-q")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(releases)).To(BeEmpty(), "no release left")
		secrets, err := kubectl(ctx, "get", "secrets", "-n", namespace, "-l", "owner=helm,name="+release, "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(secrets)).To(BeEmpty(), "no release Secret left")
		labelled, err := kubectl(ctx, "get", "deployments,configmaps,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,customresourcedefinitions",
			"-A", "-l", "app.kubernetes.io/instance="+release, "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Fields(labelled)).To(ConsistOf("customresourcedefinition.apiextensions.k8s.io/fleetbindings.vk.flightctl.io"))
		// Not the chart's: the manager's leader Lease and the suite's
		// kubelet certificate Secret stay, as after a kustomize delete.
		left, _ := kubectl(ctx, "get", "leases,secrets", "-n", namespace, "-o", "name")
		fmt.Fprintf(GinkgoWriter, "left in %s, made by the manager or the user, not by Helm: %s\n", namespace, orNone(left))
	}, SpecTimeout(4*time.Minute))

	It("installs again over the kept CRD, and uninstalls", func(ctx SpecContext) {
		out, err := helmOutput(ctx, append([]string{"install", release, chart, "-n", namespace, "--wait", "--timeout", "2m"}, installValues...)...)
		Expect(err).NotTo(HaveOccurred(), "Helm adopts the CRD it kept: its release annotations still name this release")
		Expect(out).To(ContainSubstring("STATUS: deployed"))
		owner, err := kubectl(ctx, "get", "crd", "fleetbindings.vk.flightctl.io", "-o", `jsonpath={.metadata.annotations.meta\.helm\.sh/release-name}`)
		Expect(err).NotTo(HaveOccurred())
		Expect(owner).To(Equal(release))
		_, err = helmOutput(ctx, "uninstall", release, "-n", namespace, "--wait", "--timeout", "2m")
		Expect(err).NotTo(HaveOccurred())
	}, SpecTimeout(3*time.Minute))
})

// ---------------------------------------------------------------- helpers

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// objectsByKey splits a multi-document manifest into objects keyed
// Kind/name.
func objectsByKey(manifest string) (map[string]map[string]any, error) {
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	out := map[string]map[string]any{}
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if o == nil {
			continue
		}
		meta, _ := o["metadata"].(map[string]any)
		k := fmt.Sprintf("%v/%v", o["kind"], meta["name"])
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s twice", k)
		}
		out[k] = o
	}
}

func deploymentOf(manifest string) (*appsv1.Deployment, error) {
	objs, err := objectsByKey(manifest)
	if err != nil {
		return nil, err
	}
	return toDeployment(objs["Deployment/vk-flightctl-provider"])
}

func toDeployment(o map[string]any) (*appsv1.Deployment, error) {
	if o == nil {
		return nil, errors.New("no Deployment vk-flightctl-provider")
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		return nil, fmt.Errorf("%d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	return &d, nil
}

// helmLabels are the labels the chart adds to every object.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

// stripHelm takes off what the chart adds to kustomize's objects: its
// labels, the CRD's keep policy and the image tag.
func stripHelm(o map[string]any, appVersion string) {
	meta, _ := o["metadata"].(map[string]any)
	if labels, ok := meta["labels"].(map[string]any); ok {
		for _, l := range helmLabels {
			delete(labels, l)
		}
		if len(labels) == 0 {
			delete(meta, "labels")
		}
	}
	if ann, ok := meta["annotations"].(map[string]any); ok {
		delete(ann, "helm.sh/resource-policy")
		if len(ann) == 0 {
			delete(meta, "annotations")
		}
	}
	if o["kind"] == "Deployment" {
		spec, _ := o["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		containers, _ := pod["containers"].([]any)
		for _, c := range containers {
			if cm, ok := c.(map[string]any); ok {
				img, _ := cm["image"].(string)
				repo, _, _ := strings.Cut(img, ":")
				cm["image"] = repo + ":<tag>"
			}
		}
	}
}

// chartAppVersion reads appVersion from dist/chart/Chart.yaml.
func chartAppVersion() string {
	out, err := exec.Command(helmBin, "show", "chart", chart).Output()
	Expect(err).NotTo(HaveOccurred())
	var c struct {
		AppVersion string `yaml:"appVersion"`
	}
	Expect(yaml.Unmarshal(out, &c)).To(Succeed())
	Expect(c.AppVersion).NotTo(BeEmpty())
	return c.AppVersion
}

// startLine is the manager's "Provider starting" log entry.
func startLine(logPath string) map[string]any {
	b, err := os.ReadFile(logPath)
	Expect(err).NotTo(HaveOccurred())
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `"Provider starting"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			return m
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(nothing)"
	}
	return strings.Join(strings.Fields(s), ", ")
}
