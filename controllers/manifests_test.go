package controllers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func readObjects(path string) []*unstructured.Unstructured {
	raw, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else {
			Expect(err).NotTo(HaveOccurred())
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out
}

var _ = Describe("Manifests", func() {
	ctx := context.Background()

	It("the quickstart's config/rbac.yaml and config/deployment.yaml are accepted by a real API server", func() {
		seen := map[string]bool{}
		for _, file := range []string{"rbac.yaml", "deployment.yaml"} {
			for _, u := range readObjects(filepath.Join("..", "config", file)) {
				err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("manifest-test"), client.ForceOwnership, client.DryRunAll)
				Expect(err).NotTo(HaveOccurred(), "%s: %s %s", file, u.GetKind(), u.GetName())
				seen[u.GetKind()+"/"+u.GetName()] = true
			}
		}
		Expect(seen).To(HaveKey("ServiceAccount/vk-flightctl-provider"))
		Expect(seen).To(HaveKey("ClusterRole/vk-flightctl-provider"))
		Expect(seen).To(HaveKey("ClusterRoleBinding/vk-flightctl-provider"))
		Expect(seen).To(HaveKey("Deployment/vk-flightctl-provider"))
		Expect(seen).To(HaveKey("ConfigMap/vk-flightctl-config"))
		Expect(seen).To(HaveKey("CustomResourceDefinition/fleetbindings.vk.flightctl.io"))
	})

	// Every permission the manager holds, with the reason it needs it. A
	// rule added to the generated ClusterRole without a line here fails.
	It("grants the manager only the permissions it has a reason for", func() {
		reasons := map[string]string{
			"/configmaps,secrets:get,list,watch":                                   "settings ConfigMap (watched in the manager's namespace only); pod env/volume references (get); credentials Secrets: get reads them, list/watch are a metadata-only watch (no Secret data reaches the manager) so a rotation takes effect in seconds",
			"/serviceaccounts/token:create":                                        "Kubernetes authentication to Flightctl: tokens of the manager's own ServiceAccount only (resourceNames)",
			"/events:create,patch,update":                                          "pod events (Pulling, FailedScheduling, DeviceTimeout, ...)",
			"/nodes:create,delete,get,patch":                                       "register, update taints of, and remove the virtual nodes",
			"/nodes/status,pods/status:get,patch,update":                           "node heartbeats/capacity and pod status from devices",
			"/pods:delete,get,list,watch":                                          "watch the nodes' pods, remove pods after their workload stopped or their device timed out",
			"coordination.k8s.io/leases:create,get,update":                         "node leases (heartbeats)",
			"events.k8s.io/events:create,patch":                                    "FleetBinding events",
			"authentication.k8s.io/selfsubjectreviews,tokenreviews:create":         "kubelet API: authenticate bearer tokens like a kubelet (tokenreviews); learn the manager's own username, the only requester whose kubelet-serving CSRs it approves (selfsubjectreviews)",
			"certificates.k8s.io/certificatesigningrequests:create,get,list,watch": "kubelet API serving certificate: request it and watch for it to be issued; the approver watches for the manager's own requests",
			"certificates.k8s.io/certificatesigningrequests/approval:update":       "approve the manager's own kubelet-serving CSRs (checked: requester, node names, addresses, usages)",
			"certificates.k8s.io/signers:approve":                                  "approve for the kubernetes.io/kubelet-serving signer only (resourceNames)",
			"authorization.k8s.io/subjectaccessreviews:create":                     "kubelet API: authorize calls against the pod's node like a kubelet",
			"vk.flightctl.io/fleetbindings:get,list,patch,update,watch":            "reconcile FleetBindings, manage the finalizer",
			"vk.flightctl.io/fleetbindings/finalizers:update":                      "release the finalizer",
			"vk.flightctl.io/fleetbindings/status:get,patch,update":                "status and conditions",
		}
		raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var role rbacv1.ClusterRole
		Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
		got := map[string]bool{}
		for _, r := range role.Rules {
			verbs := append([]string(nil), r.Verbs...)
			sort.Strings(verbs)
			key := strings.Join(r.APIGroups, ",") + "/" + strings.Join(r.Resources, ",") + ":" + strings.Join(verbs, ",")
			got[key] = true
			Expect(reasons).To(HaveKey(key), "ClusterRole rule %q has no documented reason", key)
			Expect(r.Verbs).NotTo(ContainElement("*"))
			Expect(r.Resources).NotTo(ContainElement("*"))
		}
		for key := range reasons {
			Expect(got).To(HaveKey(key), "documented rule %q is no longer generated: remove it here", key)
		}
	})
})
