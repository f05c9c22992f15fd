//go:build ignore

// Command helmchart writes the Helm chart dist/chart from the kustomize
// output of config/default and config/prometheus, so kustomize stays the
// source of truth and the chart cannot drift from it: `make helm-chart`
// runs it and `make verify-generated` fails when the committed chart
// differs from a fresh run. Nothing in dist/chart is edited by hand.
//
// It is excluded from the module's packages (build tag "ignore"); the
// Makefile runs it by file name:
//
//	go run hack/lib/helmchart/main.go -version 0.1.0 -out dist/chart \
//	    -sample config/samples/vk_v1alpha1_fleetbinding.yaml default.yaml prometheus.yaml
//
// Every object of the input becomes a template with the release namespace
// and Helm's standard labels. A fixed set of fields becomes values whose
// defaults are read from the input, so the default install renders what
// kustomize renders: the manager Deployment's replicas, image, resources,
// security contexts, --leader-elect and metrics port; the
// vk-flightctl-config ConfigMap's keys; the ServiceMonitor's interval. On
// top come switches kustomize has no equivalent for: the CRD's keep
// policy, the kubelet API certificate, extra args and env, scheduling
// constraints. Object names are kept as they are: the manager looks up its
// ConfigMap by the fixed name vk-flightctl-config, and one installation
// per cluster serves every FleetBinding.
//
// The output is a pure function of the input (sorted keys, no timestamps),
// which is what makes the drift check meaningful. See docs/helm.md for why
// this is not kubebuilder's helm plugin.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chartName = "vk-flightctl"
	// configMapName is the manager's settings ConfigMap
	// (internal/settings.ConfigMapName); its keys become values.
	configMapName    = "vk-flightctl-config"
	managerContainer = "manager"
	// Where the kubelet API certificate Secret and client CA are mounted.
	kubeletTLSDir      = "/etc/vk-flightctl/kubelet-tls"
	kubeletClientCADir = "/etc/vk-flightctl/kubelet-client-ca"
)

// Placeholders are written into objects before they are marshalled and
// replaced by template text afterwards: marshalling keeps the YAML valid
// and deterministic, the replacement adds what YAML cannot hold.
const (
	phPrefix = "__HELM_"
	phLabels = phPrefix + "LABELS__"
)

func main() {
	version := flag.String("version", "", "chart version and appVersion (the app's version: they move together)")
	out := flag.String("out", "dist/chart", "chart directory to (re)write")
	sample := flag.String("sample", "", "sample FleetBinding shown in NOTES.txt")
	flag.Parse()
	if err := run(*version, *out, *sample, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "helmchart:", err)
		os.Exit(1)
	}
}

// object is one Kubernetes object of the kustomize output.
type object = map[string]any

func run(version, out, samplePath string, inputs []string) error {
	if version == "" || len(inputs) == 0 {
		return errors.New("usage: helmchart -version V [-out DIR] [-sample FILE] KUSTOMIZE-OUTPUT...")
	}
	var objs []object
	for _, in := range inputs {
		o, err := readObjects(in)
		if err != nil {
			return err
		}
		objs = append(objs, o...)
	}
	g := &generator{files: map[string]string{}, version: version}
	if samplePath != "" {
		b, err := os.ReadFile(samplePath)
		if err != nil {
			return err
		}
		g.sample = strings.TrimSpace(stripComments(string(b)))
	}
	if err := g.generate(objs); err != nil {
		return err
	}
	// The whole directory is rewritten so a file no longer generated
	// disappears; the drift check would otherwise miss it.
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	names := make([]string, 0, len(g.files))
	for n := range g.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(out, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.files[n]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func readObjects(path string) ([]object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	dec := yaml.NewDecoder(f)
	var objs []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

// generator collects the chart's files and the values the templates use.
type generator struct {
	version string
	sample  string
	files   map[string]string
	// Defaults read from the input.
	replicas           any
	imageRepo          string
	imagePullPolicy    string
	leaderElect        bool
	metricsPort        int
	resources          any
	podSecurityContext any
	securityContext    any
	config             map[string]string
	monitorInterval    string
	managerName        string
	serviceAccount     string
}

func (g *generator) generate(objs []object) error {
	for _, o := range objs {
		kind, name := str(o, "kind"), str(o, "metadata", "name")
		if kind == "" || name == "" {
			return fmt.Errorf("an object without kind or name: %v", o)
		}
		var (
			file string
			body string
			err  error
		)
		switch {
		case kind == "Namespace":
			// Helm installs into the release namespace (--create-namespace).
			continue
		case kind == "CustomResourceDefinition":
			file = "templates/crds/" + name + ".yaml"
			body, err = g.crd(o)
		case kind == "Deployment":
			if g.managerName != "" {
				return fmt.Errorf("two Deployments (%s, %s): the chart knows one manager", g.managerName, name)
			}
			file = "templates/deployment.yaml"
			body, err = g.deployment(o)
		case kind == "ConfigMap" && name == configMapName:
			file = "templates/configmap.yaml"
			body, err = g.configMap(o)
		case kind == "ServiceMonitor":
			file = "templates/servicemonitor.yaml"
			body, err = g.serviceMonitor(o)
		case kind == "Service" && hasPort(o, "metrics"):
			file = "templates/metrics-service.yaml"
			body, err = g.metricsService(o)
		default:
			file = "templates/" + groupFile(kind)
			body, err = g.plain(o)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, name, err)
		}
		if prev, ok := g.files[file]; ok {
			body = prev + "---\n" + body
		}
		g.files[file] = body
	}
	if g.managerName == "" {
		return errors.New("no Deployment in the input")
	}
	if g.config == nil {
		return fmt.Errorf("no ConfigMap %s in the input", configMapName)
	}
	if g.metricsPort == 0 {
		return errors.New("the manager has no --metrics-bind-address=:PORT argument")
	}
	g.files["Chart.yaml"] = g.chartYAML()
	g.files[".helmignore"] = helmignore
	g.files["templates/_helpers.tpl"] = helpers
	g.files["templates/NOTES.txt"] = g.notes()
	vals := g.values()
	b, err := encodeValues(vals)
	if err != nil {
		return err
	}
	g.files["values.yaml"] = valuesHeader + b
	g.files["README.md"] = g.readme(vals)
	return nil
}

// groupFile is the template file for objects kustomize output holds
// without a rule of their own: one file per kind.
func groupFile(kind string) string {
	switch kind {
	case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		return "rbac.yaml"
	}
	return strings.ToLower(kind) + ".yaml"
}

// ---------------------------------------------------------------- objects

// prepare sets what every object gets: the release namespace and Helm's
// labels. ServiceAccount subjects of bindings follow the namespace.
func prepare(o object) {
	meta := o["metadata"].(object)
	if _, ok := meta["namespace"]; ok {
		meta["namespace"] = phPrefix + "NS__"
	}
	labels, _ := meta["labels"].(object)
	if labels == nil {
		labels = object{}
	}
	labels[phLabels] = "x"
	meta["labels"] = labels
	if subjects, ok := o["subjects"].([]any); ok {
		for _, s := range subjects {
			if sm, ok := s.(object); ok && sm["kind"] == "ServiceAccount" {
				sm["namespace"] = phPrefix + "NS__"
			}
		}
	}
}

func (g *generator) plain(o object) (string, error) {
	prepare(o)
	return render(o, nil)
}

func (g *generator) crd(o object) (string, error) {
	prepare(o)
	meta := o["metadata"].(object)
	ann, _ := meta["annotations"].(object)
	if ann == nil {
		ann = object{}
	}
	ann[phPrefix+"KEEP__"] = "x"
	meta["annotations"] = ann
	body, err := render(o, map[string]string{
		phPrefix + "KEEP__": "{{- if .Values.crds.keep }}\n%[1]shelm.sh/resource-policy: keep\n%[1]s{{- end }}",
	})
	if err != nil {
		return "", err
	}
	return "{{- if .Values.crds.install }}\n" + body + "{{- end }}\n", nil
}

func (g *generator) configMap(o object) (string, error) {
	prepare(o)
	data, _ := o["data"].(object)
	g.config = map[string]string{}
	repl := map[string]string{}
	for k, v := range data {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("data.%s is not a string", k)
		}
		g.config[k] = s
		ph := phPrefix + "CFG_" + k + "__"
		data[k] = ph
		repl[ph] = fmt.Sprintf("{{ index .Values.config %q | quote }}", k)
	}
	return render(o, repl)
}

func (g *generator) serviceMonitor(o object) (string, error) {
	prepare(o)
	endpoints, _ := nested(o, "spec", "endpoints").([]any)
	for _, e := range endpoints {
		if em, ok := e.(object); ok {
			if iv, ok := em["interval"].(string); ok {
				g.monitorInterval = iv
				em["interval"] = phPrefix + "INTERVAL__"
			}
		}
	}
	o["metadata"].(object)["labels"].(object)[phPrefix+"SMLABELS__"] = "x"
	body, err := render(o, map[string]string{
		phPrefix + "INTERVAL__": "{{ .Values.metrics.serviceMonitor.interval }}",
		phPrefix + "SMLABELS__": "{{- with .Values.metrics.serviceMonitor.labels }}\n%[1]s{{- toYaml . | nindent %[2]d }}\n%[1]s{{- end }}",
	})
	if err != nil {
		return "", err
	}
	return "{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled }}\n" + body + "{{- end }}\n", nil
}

func (g *generator) metricsService(o object) (string, error) {
	prepare(o)
	ports, _ := nested(o, "spec", "ports").([]any)
	for _, p := range ports {
		if pm, ok := p.(object); ok && pm["name"] == "metrics" {
			pm["port"] = phPrefix + "MPORT__"
		}
	}
	body, err := render(o, map[string]string{phPrefix + "MPORT__": "{{ .Values.metrics.port }}"})
	if err != nil {
		return "", err
	}
	// The Service exists for the ServiceMonitor; without one it has no use.
	return "{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled }}\n" + body + "{{- end }}\n", nil
}

var metricsArg = regexp.MustCompile(`^--metrics-bind-address=(.*):(\d+)$`)

func (g *generator) deployment(o object) (string, error) {
	prepare(o)
	g.managerName = str(o, "metadata", "name")
	spec := o["spec"].(object)
	g.replicas = spec["replicas"]
	if g.replicas == nil {
		g.replicas = 1
	}
	spec["replicas"] = phPrefix + "REPLICAS__"
	tmpl := spec["template"].(object)
	tmeta, _ := tmpl["metadata"].(object)
	if tmeta == nil {
		tmeta = object{}
		tmpl["metadata"] = tmeta
	}
	plabels, _ := tmeta["labels"].(object)
	if plabels == nil {
		plabels = object{}
	}
	plabels[phPrefix+"PODLABELS__"] = "x"
	tmeta["labels"] = plabels
	if _, ok := tmeta["annotations"]; ok {
		return "", errors.New("pod template annotations: not supported by the generator yet")
	}
	tmeta["annotations"] = phPrefix + "PODANN__"
	pod := tmpl["spec"].(object)
	g.serviceAccount, _ = pod["serviceAccountName"].(string)
	g.podSecurityContext = pod["securityContext"]
	pod["securityContext"] = phPrefix + "PODSEC__"
	for _, k := range []string{"nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName", "volumes"} {
		if _, ok := pod[k]; ok {
			return "", fmt.Errorf("pod %s: not supported by the generator yet (it would be overwritten by the value)", k)
		}
	}
	pod["imagePullSecrets"] = phPrefix + "PULLSECRETS__"
	pod["nodeSelector"] = phPrefix + "NODESEL__"
	pod["tolerations"] = phPrefix + "TOLER__"
	pod["affinity"] = phPrefix + "AFFIN__"
	pod["priorityClassName"] = phPrefix + "PRIO__"
	pod["volumes"] = phPrefix + "VOLUMES__"

	containers, _ := pod["containers"].([]any)
	var c object
	for _, x := range containers {
		if xm, ok := x.(object); ok && xm["name"] == managerContainer {
			c = xm
		}
	}
	if c == nil {
		return "", fmt.Errorf("no container %q", managerContainer)
	}
	image, _ := c["image"].(string)
	g.imageRepo = image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		g.imageRepo = image[:i]
	}
	c["image"] = phPrefix + "IMAGE__"
	g.imagePullPolicy, _ = c["imagePullPolicy"].(string)
	if g.imagePullPolicy == "" {
		g.imagePullPolicy = "IfNotPresent"
	}
	c["imagePullPolicy"] = phPrefix + "PULLPOLICY__"

	// Args: --leader-elect and the metrics address become values, the
	// rest is kept in order; then the kubelet TLS files and extraArgs
	// (last, so they can override: Go's flag package keeps the last value).
	args, _ := c["args"].([]any)
	var argLines []string
	for _, a := range args {
		s, ok := a.(string)
		if !ok {
			return "", fmt.Errorf("arg %v is not a string", a)
		}
		switch m := metricsArg.FindStringSubmatch(s); {
		case s == "--leader-elect" || s == "--leader-elect=true":
			g.leaderElect = true
			argLines = append(argLines, "{{- if .Values.leaderElection.enabled }}", "- --leader-elect", "{{- end }}")
		case m != nil:
			g.metricsPort, _ = strconv.Atoi(m[2])
			argLines = append(argLines,
				"{{- if .Values.metrics.enabled }}",
				"- --metrics-bind-address="+m[1]+":{{ .Values.metrics.port }}",
				"{{- else }}",
				`- --metrics-bind-address=0`,
				"{{- end }}")
		default:
			q, err := json.Marshal(s)
			if err != nil {
				return "", err
			}
			argLines = append(argLines, "- "+string(q))
		}
	}
	if !g.leaderElect {
		argLines = append(argLines, "{{- if .Values.leaderElection.enabled }}", "- --leader-elect", "{{- end }}")
	}
	argLines = append(argLines,
		"{{- if .Values.kubeletTLS.secretName }}",
		"- --kubelet-tls-cert-file="+kubeletTLSDir+"/tls.crt",
		"- --kubelet-tls-key-file="+kubeletTLSDir+"/tls.key",
		"{{- end }}",
		"{{- if .Values.kubeletTLS.clientCAConfigMap }}",
		"- --kubelet-client-ca-file="+kubeletClientCADir+"/ca.crt",
		"{{- end }}",
		"{{- range .Values.extraArgs }}",
		"- {{ . | quote }}",
		"{{- end }}")
	c["args"] = phPrefix + "ARGS__"

	env, _ := c["env"].([]any)
	envYAML, err := sigsyaml.Marshal(env)
	if err != nil {
		return "", err
	}
	c["env"] = phPrefix + "ENV__"

	for _, p := range asList(c["ports"]) {
		if pm, ok := p.(object); ok && pm["name"] == "metrics" {
			pm["containerPort"] = phPrefix + "MPORT__"
		}
	}
	g.resources = c["resources"]
	c["resources"] = phPrefix + "RESOURCES__"
	g.securityContext = c["securityContext"]
	c["securityContext"] = phPrefix + "SEC__"
	if _, ok := c["volumeMounts"]; ok {
		return "", errors.New("container volumeMounts: not supported by the generator yet")
	}
	c["volumeMounts"] = phPrefix + "MOUNTS__"

	toYAMLBlock := func(v string) string {
		return "\n%[1]s{{- toYaml .Values." + v + " | nindent %[2]d }}"
	}
	withBlock := func(v string) string {
		return "{{- with .Values." + v + " }}\n%[3]s%[4]s:\n%[1]s{{- toYaml . | nindent %[2]d }}\n%[3]s{{- end }}"
	}
	envLines := strings.Split(strings.TrimRight(string(envYAML), "\n"), "\n")
	// Input text goes into fmt formats below: a literal % must stay one.
	for i := range envLines {
		envLines[i] = strings.ReplaceAll(envLines[i], "%", "%%")
	}
	for i := range argLines {
		argLines[i] = strings.ReplaceAll(argLines[i], "%", "%%")
	}
	repl := map[string]string{
		phPrefix + "REPLICAS__":    "{{ .Values.replicas }}",
		phPrefix + "IMAGE__":       `"{{ .Values.image.repository }}{{ if .Values.image.digest }}@{{ .Values.image.digest }}{{ else }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{ end }}"`,
		phPrefix + "PULLPOLICY__":  "{{ .Values.image.pullPolicy }}",
		phPrefix + "MPORT__":       "{{ .Values.metrics.port }}",
		phPrefix + "RESOURCES__":   toYAMLBlock("resources"),
		phPrefix + "SEC__":         toYAMLBlock("securityContext"),
		phPrefix + "PODSEC__":      toYAMLBlock("podSecurityContext"),
		phPrefix + "PODLABELS__":   "{{- with .Values.podLabels }}\n%[1]s{{- toYaml . | nindent %[2]d }}\n%[1]s{{- end }}",
		phPrefix + "PODANN__":      withBlock("podAnnotations"),
		phPrefix + "PULLSECRETS__": withBlock("imagePullSecrets"),
		phPrefix + "NODESEL__":     withBlock("nodeSelector"),
		phPrefix + "TOLER__":       withBlock("tolerations"),
		phPrefix + "AFFIN__":       withBlock("affinity"),
		phPrefix + "PRIO__":        "{{- with .Values.priorityClassName }}\n%[3]spriorityClassName: {{ . | quote }}\n%[3]s{{- end }}",
		phPrefix + "ARGS__":        "\n" + indentLines(argLines, "%[3]s"),
		phPrefix + "ENV__":         "\n" + indentLines(envLines, "%[3]s") + "\n%[3]s{{- with .Values.extraEnv }}\n%[3]s{{- toYaml . | nindent %[5]d }}\n%[3]s{{- end }}",
		phPrefix + "MOUNTS__": "{{- if or .Values.kubeletTLS.secretName .Values.kubeletTLS.clientCAConfigMap }}\n%[3]svolumeMounts:" +
			"\n%[3]s{{- if .Values.kubeletTLS.secretName }}\n%[3]s- name: kubelet-tls\n%[3]s  mountPath: " + kubeletTLSDir + "\n%[3]s  readOnly: true\n%[3]s{{- end }}" +
			"\n%[3]s{{- if .Values.kubeletTLS.clientCAConfigMap }}\n%[3]s- name: kubelet-client-ca\n%[3]s  mountPath: " + kubeletClientCADir + "\n%[3]s  readOnly: true\n%[3]s{{- end }}" +
			"\n%[3]s{{- end }}",
		phPrefix + "VOLUMES__": "{{- if or .Values.kubeletTLS.secretName .Values.kubeletTLS.clientCAConfigMap }}\n%[3]svolumes:" +
			"\n%[3]s{{- with .Values.kubeletTLS.secretName }}\n%[3]s- name: kubelet-tls\n%[3]s  secret:\n%[3]s    secretName: {{ . }}\n%[3]s{{- end }}" +
			"\n%[3]s{{- with .Values.kubeletTLS.clientCAConfigMap }}\n%[3]s- name: kubelet-client-ca\n%[3]s  configMap:\n%[3]s    name: {{ . }}\n%[3]s{{- end }}" +
			"\n%[3]s{{- end }}",
	}
	return render(o, repl)
}

// ---------------------------------------------------------------- rendering

var placeholderLine = regexp.MustCompile(`(?m)^( *)(- )?([A-Za-z_][A-Za-z0-9_]*: )?(` + phPrefix + `[A-Za-z0-9_]+__)(: x)?$`)

// render marshals o and replaces the placeholders. A replacement may use
// fmt verbs: %[1]s is the indentation of the placeholder's value (its
// children), %[2]d that width, %[3]s the indentation of the key itself,
// %[4]s the key, %[5]d the key's indentation width. A replacement that
// starts with "\n" keeps the key ("key:" followed by the block); one that
// starts with "{{-" replaces the whole line.
func render(o object, repl map[string]string) (string, error) {
	b, err := sigsyaml.Marshal(o)
	if err != nil {
		return "", err
	}
	text := escapeTemplates(string(b))
	var missing, bad []string
	text = placeholderLine.ReplaceAllStringFunc(text, func(line string) string {
		m := placeholderLine.FindStringSubmatch(line)
		lead, dash, key, ph, asKey := m[1]+m[2], m[2], strings.TrimSuffix(m[3], ": "), m[4], m[5] != ""
		// lead is the text before the key as marshalled ("  - " for the
		// first key of a list item); keyIndent is the key's column.
		keyIndent := strings.Repeat(" ", len(lead))
		child := keyIndent + "  "
		format := func(r string, first string) string {
			if !strings.Contains(r, "%[") {
				return r
			}
			return fmt.Sprintf(r, first, len(first), keyIndent, key, len(keyIndent))
		}
		switch {
		case ph == phPrefix+"NS__":
			return lead + key + ": {{ .Release.Namespace }}"
		case ph == phLabels && asKey:
			return lead + `{{- include "vk-flightctl.labels" . | nindent ` + strconv.Itoa(len(keyIndent)) + " }}"
		}
		r, ok := repl[ph]
		if !ok {
			missing = append(missing, ph)
			return line
		}
		switch {
		case asKey:
			// A placeholder key in a map: the replacement is lines at
			// the key's own indentation.
			if dash != "" {
				bad = append(bad, ph)
			}
			return lead + format(r, keyIndent)
		case strings.HasPrefix(r, "\n"):
			return lead + key + ":" + format(r, child)
		case strings.HasPrefix(r, "{{-"):
			// The whole line is replaced: impossible for the first key
			// of a list item, whose dash would be lost.
			if dash != "" {
				bad = append(bad, ph)
			}
			return lead + format(r, child)
		default:
			return lead + key + ": " + format(r, child)
		}
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("internal error: placeholders on a list item's first line: %v", bad)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("internal error: placeholders without replacement: %v", missing)
	}
	if strings.Contains(text, phPrefix) {
		return "", fmt.Errorf("internal error: a placeholder is left in\n%s", text)
	}
	return text, nil
}

// escapeTemplates keeps text from the input that looks like a template
// (a CRD description quoting {{ }}, say) literal in the chart.
func escapeTemplates(s string) string {
	return strings.NewReplacer("{{", "{{`{{`}}", "}}", "{{`}}`}}").Replace(s)
}

func indentLines(lines []string, indent string) string {
	for i, l := range lines {
		lines[i] = indent + l
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- values

// value is one entry of values.yaml: a leaf with its default, or a map of
// entries. The same tree writes values.yaml and the README's table.
type value struct {
	key, doc string
	def      any
	children []value
}

func (g *generator) values() []value {
	cfgKeys := make([]string, 0, len(g.config))
	for k := range g.config {
		cfgKeys = append(cfgKeys, k)
	}
	sort.Strings(cfgKeys)
	var cfg []value
	for _, k := range cfgKeys {
		doc := configDocs[k]
		if doc == "" {
			doc = "Key " + k + " of the vk-flightctl-config ConfigMap."
		}
		cfg = append(cfg, value{key: k, doc: doc, def: g.config[k]})
	}
	interval := g.monitorInterval
	if interval == "" {
		interval = "30s"
	}
	return []value{
		{key: "image", doc: "The manager image (build it with the Dockerfile; nothing is published yet).", children: []value{
			{key: "repository", doc: "Image repository.", def: g.imageRepo},
			{key: "tag", doc: "Image tag; empty means the chart's appVersion.", def: ""},
			{key: "digest", doc: "Image digest (sha256:...); set, it wins over the tag.", def: ""},
			{key: "pullPolicy", doc: "Image pull policy.", def: g.imagePullPolicy},
		}},
		{key: "imagePullSecrets", doc: "Secrets for pulling the image, e.g. [{name: regcred}].", def: []any{}},
		{key: "replicas", doc: "Manager replicas. With leader election one is active and the others wait to take over; without it keep 1 (two active managers would fight over the nodes).", def: g.replicas},
		{key: "leaderElection", doc: "Leader election (a Lease vk-flightctl-provider in the release namespace).", children: []value{
			{key: "enabled", doc: "Pass --leader-elect: only the Lease holder runs nodes and writes to Flightctl.", def: g.leaderElect},
		}},
		{key: "config", doc: "Manager-wide defaults: the vk-flightctl-config ConfigMap, read live (no restart). A FleetBinding's own fields override them.", children: cfg},
		{key: "metrics", doc: "The manager's Prometheus /metrics endpoint.", children: []value{
			{key: "enabled", doc: "Serve /metrics; false passes --metrics-bind-address=0.", def: true},
			{key: "port", doc: "Port of /metrics (container port metrics).", def: g.metricsPort},
			{key: "serviceMonitor", doc: "A Service and a Prometheus Operator ServiceMonitor for /metrics (needs the monitoring.coreos.com CRDs).", children: []value{
				{key: "enabled", doc: "Create the Service and the ServiceMonitor.", def: false},
				{key: "interval", doc: "Scrape interval.", def: interval},
				{key: "labels", doc: "Extra ServiceMonitor labels, e.g. the release label your Prometheus selects.", def: map[string]any{}},
			}},
		}},
		{key: "kubeletTLS", doc: "The kubelet API (logs, exec) the virtual nodes serve on port 10250.", children: []value{
			{key: "secretName", doc: "A kubernetes.io/tls Secret (tls.crt, tls.key) in the release namespace for the serving certificate; empty: a self-signed one made at start.", def: ""},
			{key: "clientCAConfigMap", doc: "A ConfigMap (key ca.crt) with the CA that signs the API server's kubelet client certificate, e.g. kube-root-ca.crt; empty: only bearer tokens are accepted.", def: ""},
		}},
		{key: "extraArgs", doc: "More manager flags, appended last (a repeated flag overrides), e.g. [--pod-sync-workers=8, --v=1].", def: []any{}},
		{key: "extraEnv", doc: "More environment variables for the manager container.", def: []any{}},
		{key: "resources", doc: "Manager container resources (GOMEMLIMIT follows limits.memory).", def: g.resources},
		{key: "podSecurityContext", doc: "Pod security context.", def: g.podSecurityContext},
		{key: "securityContext", doc: "Manager container security context.", def: g.securityContext},
		{key: "podLabels", doc: "Extra pod labels.", def: map[string]any{}},
		{key: "podAnnotations", doc: "Extra pod annotations.", def: map[string]any{}},
		{key: "nodeSelector", doc: "Pod node selector.", def: map[string]any{}},
		{key: "tolerations", doc: "Pod tolerations.", def: []any{}},
		{key: "affinity", doc: "Pod affinity.", def: map[string]any{}},
		{key: "priorityClassName", doc: "Pod priority class.", def: ""},
		{key: "crds", doc: "The FleetBinding CRD, a template so helm upgrade updates it (Helm never upgrades crds/).", children: []value{
			{key: "install", doc: "Install and upgrade the CRD with the release; false if you manage it yourself (config/crd).", def: true},
			{key: "keep", doc: "Keep the CRD on helm uninstall (helm.sh/resource-policy: keep): deleting it would delete every FleetBinding and so every virtual node.", def: true},
		}},
	}
}

// configDocs describe the ConfigMap's keys (config/manager/config.yaml).
var configDocs = map[string]string{
	"reconnectTimeout":   "How long pods on a disconnected device stay Unknown before they are deleted so their controllers recreate them (minimum 10s).",
	"statusPollInterval": "How often device status is read from Flightctl (minimum 1s).",
}

func encodeValues(vals []value) (string, error) {
	root, err := valuesNode(vals)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return "", err
	}
	// A blank line before each top-level entry's comment, for reading.
	var out []string
	prevComment := true
	for _, l := range strings.Split(buf.String(), "\n") {
		isComment := strings.HasPrefix(l, "#")
		if isComment && !prevComment {
			out = append(out, "")
		}
		prevComment = isComment
		out = append(out, l)
	}
	return strings.Join(out, "\n"), nil
}

func valuesNode(vals []value) (*yaml.Node, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, v := range vals {
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: v.key, HeadComment: wrap(v.doc)}
		var val *yaml.Node
		if v.children != nil {
			var err error
			if val, err = valuesNode(v.children); err != nil {
				return nil, err
			}
		} else {
			val = &yaml.Node{}
			if err := val.Encode(v.def); err != nil {
				return nil, err
			}
			if val.Kind == yaml.MappingNode || val.Kind == yaml.SequenceNode {
				if len(val.Content) == 0 {
					val.Style = yaml.FlowStyle
				}
			}
			if val.Kind == yaml.ScalarNode && val.Tag == "!!str" {
				val.Style = yaml.DoubleQuotedStyle
			}
		}
		m.Content = append(m.Content, k, val)
	}
	return m, nil
}

// wrap breaks a comment at about 90 columns.
func wrap(s string) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > 90 {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}

func (g *generator) readme(vals []value) string {
	var b strings.Builder
	fmt.Fprintf(&b, readmeHeader, g.version)
	b.WriteString("| Key | Default | Description |\n|---|---|---|\n")
	var walk func(prefix string, vs []value)
	walk = func(prefix string, vs []value) {
		for _, v := range vs {
			if v.children != nil {
				walk(prefix+v.key+".", v.children)
				continue
			}
			d, _ := json.Marshal(v.def)
			fmt.Fprintf(&b, "| `%s%s` | `%s` | %s |\n", prefix, v.key, d, strings.ReplaceAll(v.doc, "|", "\\|"))
		}
	}
	walk("", vals)
	return b.String()
}

// ---------------------------------------------------------------- static files

func (g *generator) chartYAML() string {
	return fmt.Sprintf(`# Generated by hack/lib/helmchart from config/ (make helm-chart); do not edit.
apiVersion: v2
name: %s
description: Run Kubernetes pods on Flightctl edge devices through virtual-kubelet nodes, one per FleetBinding.
type: application
# The chart and the manager are released together: version = appVersion
# (Makefile VERSION), and the image tag defaults to appVersion.
version: %s
appVersion: %q
keywords:
  - virtual-kubelet
  - flightctl
  - edge
`, chartName, g.version, g.version)
}

func (g *generator) notes() string {
	sample := g.sample
	if sample == "" {
		sample = "(see config/samples)"
	}
	return `vk-flightctl {{ .Chart.AppVersion }} is installed in namespace {{ .Release.Namespace }}
(Deployment ` + g.managerName + `, ServiceAccount ` + g.serviceAccount + `, ConfigMap ` + configMapName + `).

  kubectl -n {{ .Release.Namespace }} rollout status deployment/` + g.managerName + `

Bind a Flightctl fleet: a Secret with the API URL and a token (optionally
ca.crt), then a FleetBinding naming it, in the same namespace:

  kubectl create secret generic flightctl-credentials -n default \
    --from-literal=api-url=https://flightctl.example.com:3443 \
    --from-literal=auth-token=<token> [--from-file=ca.crt=<ca.pem>]

  kubectl apply -f - <<'EOF'
` + indentLines(strings.Split(escapeTemplates(sample), "\n"), "  ") + `
  EOF

  kubectl get fleetbindings -A     # READY, then the node:
  kubectl get nodes -l flightctl.io/fleet
{{- if .Values.crds.keep }}

The FleetBinding CRD is kept on helm uninstall (crds.keep); remove it with
kubectl delete crd fleetbindings.vk.flightctl.io, which deletes every FleetBinding.
{{- end }}
`
}

const valuesHeader = `# Generated by hack/lib/helmchart from config/ (make helm-chart); do not edit.
# Defaults render what the kustomize overlay config/default renders.
# The table of these values is in README.md next to this file.

`

const readmeHeader = `<!-- Generated by hack/lib/helmchart from config/ (make helm-chart); do not edit. -->
# vk-flightctl Helm chart %s

Generated from the kustomize bases in config/ (see docs/helm.md): with default values it renders
the objects ` + "`kustomize build config/default`" + ` renders, in the release namespace.

` + "```bash" + `
helm install vk-flightctl dist/chart -n vk-flightctl-system --create-namespace \
  --set image.repository=registry.example.com/vk-flightctl-provider
` + "```" + `

## Values

`

const helmignore = `# Generated by hack/lib/helmchart (make helm-chart); do not edit.
.DS_Store
*.swp
*.bak
*.tmp
*.orig
*~
`

const helpers = `{{/* Generated by hack/lib/helmchart (make helm-chart); do not edit. */}}

{{/*
Standard labels on every object (the selector keeps kustomize's app label,
which is immutable on a Deployment).
*/}}
{{- define "vk-flightctl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
`

// ---------------------------------------------------------------- helpers

func nested(o object, path ...string) any {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(object)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func str(o object, path ...string) string {
	s, _ := nested(o, path...).(string)
	return s
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func hasPort(o object, name string) bool {
	for _, p := range asList(nested(o, "spec", "ports")) {
		if pm, ok := p.(object); ok && pm["name"] == name {
			return true
		}
	}
	return false
}

// stripComments drops whole-line comments of the sample: NOTES.txt shows
// the object, the docs explain it.
func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
