package flightctlsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// A real Flightctl server validates a request twice: first against its
// OpenAPI schema (messages start with "API Error:"), then in the handler
// (Kubernetes-style field errors joined by newlines). Both stages are
// reproduced here with the messages the v1.2.0 server sends, because
// clients show them to users and tests assert on them.

// Image reference patterns of Flightctl v1.2. The strict form, used inside
// compose and quadlet files, requires a registry host: podman on a device
// may not be configured with search registries, so a short name there
// would fail at run time instead of at admission.
const (
	ociImageRefFmt       = `((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:[.](?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)*)(?:\:([\w][\w.-]{0,127}))?(?:\@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?`
	strictOciImageRefFmt = `((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:[.](?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)*)(?:\:([\w][\w.-]{0,127}))?(?:\@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?`
	imageRefExample      = "quay.io/flightctl/flightctl:latest"
	dns1123LabelFmt      = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	envVarNameFmt        = `[A-Za-z_][A-Za-z0-9_]*`
	maxNameLength        = 253
	maxImageRefLength    = 2048
	maxInlineLength      = 1024 * 1024
)

var (
	ociImageRefRegexp       = regexp.MustCompile("^" + ociImageRefFmt + "$")
	strictOciImageRefRegexp = regexp.MustCompile("^" + strictOciImageRefFmt + "$")
	appNameRegexp           = regexp.MustCompile("^" + dns1123LabelFmt + "$")
	envVarNameRegexp        = regexp.MustCompile("^" + envVarNameFmt + "$")
	portRegexp              = regexp.MustCompile(`^[0-9]+:[0-9]+$`)
	memoryLimitRegexp       = regexp.MustCompile(`^[0-9]+[bkmg]?$`)
)

// Schema texts the real server prints when an application lacks its
// source; copied from its responses (transcripts 26b and 26c).
const (
	containerImageSchema = "  {\n    \"properties\": {\n      \"image\": {\n        \"description\": \"Reference to the image for this container.\",\n        \"type\": \"string\"\n      },\n      \"ports\": {\n        \"description\": \"Port mappings.\",\n        \"items\": {\n          \"$ref\": \"#/components/schemas/ApplicationPort\"\n        },\n        \"type\": \"array\"\n      },\n      \"resources\": {\n        \"$ref\": \"#/components/schemas/ApplicationResources\"\n      }\n    },\n    \"required\": [\n      \"image\"\n    ],\n    \"type\": \"object\"\n  }"
	packageImageSchema   = "  {\n    \"properties\": {\n      \"image\": {\n        \"description\": \"Reference to the OCI image or artifact for the application package.\",\n        \"type\": \"string\"\n      }\n    },\n    \"required\": [\n      \"image\"\n    ],\n    \"type\": \"object\"\n  }"
	inlineSchema         = "  {\n    \"properties\": {\n      \"inline\": {\n        \"description\": \"A list of application content.\",\n        \"items\": {\n          \"$ref\": \"#/components/schemas/ApplicationContent\"\n        },\n        \"type\": \"array\"\n      }\n    },\n    \"required\": [\n      \"inline\"\n    ],\n    \"type\": \"object\"\n  }"
)

// deviceStatusRequired is the order in which the schema lists the
// required properties of DeviceStatus; the first missing one is reported.
var deviceStatusRequired = []string{
	"conditions", "systemInfo", "applications", "applicationsSummary", "resources",
	"integrity", "config", "os", "updated", "summary", "lifecycle",
}

// requestBodyError formats a schema violation the way the real server's
// request validator does.
func requestBodyError(schema, at, msg string) string {
	return fmt.Sprintf("API Error: request body has an error: doesn't match schema #/components/schemas/%s: Error at %q: %s", schema, at, msg)
}

// valueDump prints a value the way the schema validator does in its
// "Value:" blocks.
func valueDump(v any) string {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return "  <unprintable>"
	}
	return "  " + string(b)
}

// checkTopLevel reports unsupported or missing top-level properties of a
// Device or Fleet body (both schemas forbid additional properties).
func checkTopLevel(body map[string]any, schema string, required []string) string {
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			return requestBodyError(schema, "/"+k, fmt.Sprintf("property %q is unsupported", k))
		}
	}
	for _, k := range required {
		if _, ok := body[k]; !ok {
			return requestBodyError(schema, "/"+k, fmt.Sprintf("property %q is missing", k))
		}
	}
	if msg := checkMetaSchema(body["metadata"], schema); msg != "" {
		return msg
	}
	return ""
}

// checkMetaSchema checks the types of the metadata fields clients set.
func checkMetaSchema(v any, schema string) string {
	if v == nil {
		return ""
	}
	meta, ok := v.(map[string]any)
	if !ok {
		return requestBodyError(schema, "/metadata", "value must be an object")
	}
	for _, k := range []string{"name", "resourceVersion", "owner"} {
		if x, ok := meta[k]; ok && x != nil {
			if _, isStr := x.(string); !isStr {
				return requestBodyError(schema, "/metadata/"+k, "value must be a string")
			}
		}
	}
	if x, ok := meta["labels"]; ok && x != nil {
		labels, isMap := x.(map[string]any)
		if !isMap {
			return requestBodyError(schema, "/metadata/labels", "value must be an object")
		}
		// The OpenAPI schema (ObjectMeta.labels) caps values at 63
		// characters, so Flightctl v1.2.0 refuses an over-long value in
		// its request validator, with this message, before the handler's
		// Kubernetes-style label validation sees it.
		for _, lk := range sortedAnyKeys(labels) {
			lv, isStr := labels[lk].(string)
			if !isStr {
				return requestBodyError(schema, "/metadata/labels/"+lk, "value must be a string")
			}
			if utf8.RuneCountInString(lv) > maxLabelValueSchema {
				return requestBodyError(schema, "/metadata/labels/"+lk, fmt.Sprintf("maximum string length is %d", maxLabelValueSchema))
			}
		}
	}
	return ""
}

// maxLabelValueSchema is maxLength of label values in the OpenAPI schema.
const maxLabelValueSchema = 63

// sortedAnyKeys returns a generic map's keys in order, so that the first
// error reported is stable.
func sortedAnyKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkStatusSchema checks a status object in a body: the real server
// rejects a partial status even where it then ignores the status.
func checkStatusSchema(v any, schema string) string {
	if v == nil {
		return ""
	}
	st, ok := v.(map[string]any)
	if !ok {
		return requestBodyError(schema, "/status", "value must be an object")
	}
	for _, k := range deviceStatusRequired {
		if _, ok := st[k]; !ok {
			return requestBodyError(schema, "/status/"+k, fmt.Sprintf("property %q is missing", k))
		}
	}
	return ""
}

// checkSpecSchema checks a device spec (or fleet template spec) against
// the parts of the schema the simulator models: the application union.
func checkSpecSchema(v any, schema, at string) string {
	if v == nil {
		return ""
	}
	spec, ok := v.(map[string]any)
	if !ok {
		return requestBodyError(schema, at, "value must be an object")
	}
	apps, ok := spec["applications"]
	if !ok || apps == nil {
		return ""
	}
	list, ok := apps.([]any)
	if !ok {
		return requestBodyError(schema, at+"/applications", "value must be an array")
	}
	for i, it := range list {
		appAt := fmt.Sprintf("%s/applications/%d", at, i)
		app, ok := it.(map[string]any)
		if !ok {
			return requestBodyError(schema, appAt, "value must be an object")
		}
		if msg := checkAppSchema(app, schema, appAt); msg != "" {
			return msg
		}
	}
	return ""
}

// checkAppSchema checks one application against the ApplicationProviderSpec
// union (discriminated by appType).
func checkAppSchema(app map[string]any, schema, at string) string {
	t, ok := app["appType"]
	if !ok {
		return requestBodyError(schema, at, `input does not contain the discriminator property "appType"`)
	}
	for _, k := range []string{"name", "image", "appType", "runAs"} {
		if x, ok := app[k]; ok && x != nil {
			if _, isStr := x.(string); !isStr {
				return requestBodyError(schema, at+"/"+k, "value must be a string")
			}
		}
	}
	if msg := checkInlineSchema(app["inline"], schema, at+"/inline"); msg != "" {
		return msg
	}
	_, hasImage := app["image"]
	_, hasInline := app["inline"]
	switch t {
	case flightctl.AppTypeContainer:
		if !hasImage {
			return "API Error: 1 API errors found. The most relevant is likely:\n" +
				fmt.Sprintf("Error at %q: doesn't match schema due to: Error at \"/image\": property \"image\" is missing\n", at) +
				"Schema:\n" + containerImageSchema + "\n\nValue:\n" + valueDump(app) + "\n\nOther errors found were:\n"
		}
	case flightctl.AppTypeHelm:
		if !hasImage {
			return requestBodyError(schema, at+"/image", `property "image" is missing`)
		}
	case flightctl.AppTypeCompose, flightctl.AppTypeQuadlet:
		switch {
		case !hasImage && !hasInline:
			dump := valueDump(app)
			return "API Error: 1 API errors found. The most relevant is likely:\n" +
				fmt.Sprintf("Error at %q: doesn't match schema due to: doesn't match schema due to: doesn't match schema due to: Error at \"/image\": property \"image\" is missing\n", at) +
				"Schema:\n" + packageImageSchema + "\n\nValue:\n" + dump +
				"\n Or doesn't match schema due to: Error at \"/inline\": property \"inline\" is missing\n" +
				"Schema:\n" + inlineSchema + "\n\nValue:\n" + dump + "\n\nOther errors found were:\n"
		case hasImage && hasInline:
			return requestBodyError(schema, at, `value matches more than one schema from "oneOf" (matches schemas at indices [0 1])`)
		}
	default:
		return requestBodyError(schema, at, `discriminator property "appType" has invalid value`)
	}
	return ""
}

// checkInlineSchema checks the inline file list of an application.
func checkInlineSchema(v any, schema, at string) string {
	if v == nil {
		return ""
	}
	list, ok := v.([]any)
	if !ok {
		return requestBodyError(schema, at, "value must be an array")
	}
	for i, it := range list {
		fAt := fmt.Sprintf("%s/%d", at, i)
		f, ok := it.(map[string]any)
		if !ok {
			return requestBodyError(schema, fAt, "value must be an object")
		}
		if _, ok := f["path"]; !ok {
			return requestBodyError(schema, fAt+"/path", `property "path" is missing`)
		}
		for _, k := range []string{"path", "content", "contentEncoding"} {
			if x, ok := f[k]; ok && x != nil {
				if _, isStr := x.(string); !isStr {
					return requestBodyError(schema, fAt+"/"+k, "value must be a string")
				}
			}
		}
		if enc, ok := f["contentEncoding"].(string); ok && enc != "plain" && enc != "base64" {
			return requestBodyError(schema, fAt+"/contentEncoding", `value is not one of the allowed values ["plain","base64"]`)
		}
	}
	return ""
}

// fieldPath builds a Kubernetes field path from Flightctl's dotted
// notation, so that messages are formatted by the same library the real
// server uses.
func fieldPath(p string) *field.Path {
	parts := strings.Split(p, ".")
	return field.NewPath(parts[0], parts[1:]...)
}

// appendField adds Kubernetes field errors as messages.
func appendField(errs []string, list field.ErrorList) []string {
	for _, e := range list {
		errs = append(errs, e.Error())
	}
	return errs
}

// validateString mirrors Flightctl's string validator: length bounds and
// an optional pattern, each reported as its own field error.
func validateString(s string, p string, minLen, maxLen int, re *regexp.Regexp, reFmt string, examples ...string) []string {
	var list field.ErrorList
	if len(s) < minLen {
		if minLen == 1 {
			list = append(list, field.Required(fieldPath(p), ""))
		} else {
			list = append(list, field.Invalid(fieldPath(p), s, fmt.Sprintf("must have at least %d characters", minLen)))
		}
	}
	if len(s) > maxLen {
		list = append(list, field.TooLong(fieldPath(p), s, maxLen))
	}
	if re != nil && !re.MatchString(s) {
		list = append(list, field.Invalid(fieldPath(p), s, k8svalidation.RegexError("Invalidpattern", reFmt, examples...)))
	}
	return appendField(nil, list)
}

// validateImage checks an image reference; strict requires a registry.
func validateImage(ref, p string, strict, fleetTemplate bool) []string {
	if fleetTemplate && strings.Contains(ref, "{{") {
		// Fleet templates may parameterise images; the real server checks
		// them with a template-aware pattern the simulator does not model.
		return nil
	}
	if strict {
		return validateString(ref, p, 1, maxImageRefLength, strictOciImageRefRegexp, strictOciImageRefFmt, imageRefExample)
	}
	return validateString(ref, p, 1, maxImageRefLength, ociImageRefRegexp, ociImageRefFmt, imageRefExample)
}

// Label and name rules with the messages of the Kubernetes libraries the
// v1.2 server is built with (apimachinery v0.32). Newer releases word
// length errors differently ("bytes" instead of "characters"), so the
// simulator spells the rules out rather than calling the current library.
const (
	qualifiedNameFmt    = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
	qualifiedNameErrMsg = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
	labelValueFmt       = "(" + qualifiedNameFmt + ")?"
	labelValueErrMsg    = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
	dns1123SubdomainFmt = dns1123LabelFmt + `(\.` + dns1123LabelFmt + ")*"
	dns1123SubdomainMsg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
)

var (
	qualifiedNameRegexp    = regexp.MustCompile("^" + qualifiedNameFmt + "$")
	labelValueRegexp       = regexp.MustCompile("^" + labelValueFmt + "$")
	dns1123SubdomainRegexp = regexp.MustCompile("^" + dns1123SubdomainFmt + "$")
)

// maxLenError is the v0.32 wording of a length limit.
func maxLenError(n int) string { return fmt.Sprintf("must be no more than %d characters", n) }

// isDNS1123Subdomain checks a DNS subdomain (object names, label prefixes).
func isDNS1123Subdomain(v string) []string {
	var errs []string
	if len(v) > maxNameLength {
		errs = append(errs, maxLenError(maxNameLength))
	}
	if !dns1123SubdomainRegexp.MatchString(v) {
		errs = append(errs, k8svalidation.RegexError(dns1123SubdomainMsg, dns1123SubdomainFmt, "example.com"))
	}
	return errs
}

// isQualifiedName checks a label key ([prefix/]name).
func isQualifiedName(v string) []string {
	var errs []string
	parts := strings.Split(v, "/")
	var name string
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		var prefix string
		prefix, name = parts[0], parts[1]
		if prefix == "" {
			errs = append(errs, "prefix part must be non-empty")
		} else {
			for _, m := range isDNS1123Subdomain(prefix) {
				errs = append(errs, "prefix part "+m)
			}
		}
	default:
		return []string{"a qualified name " + k8svalidation.RegexError(qualifiedNameErrMsg, qualifiedNameFmt, "MyName", "my.name", "123-abc") +
			" with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"}
	}
	switch {
	case name == "":
		errs = append(errs, "name part must be non-empty")
	case len(name) > 63:
		errs = append(errs, "name part "+maxLenError(63))
	}
	if !qualifiedNameRegexp.MatchString(name) {
		errs = append(errs, "name part "+k8svalidation.RegexError(qualifiedNameErrMsg, qualifiedNameFmt, "MyName", "my.name", "123-abc"))
	}
	return errs
}

// isLabelValue checks a label value.
func isLabelValue(v string) []string {
	var errs []string
	if len(v) > 63 {
		errs = append(errs, maxLenError(63))
	}
	if !labelValueRegexp.MatchString(v) {
		errs = append(errs, k8svalidation.RegexError(labelValueErrMsg, labelValueFmt, "MyValue", "my_value", "12345"))
	}
	return errs
}

// validateResourceName checks metadata.name.
func validateResourceName(name *string) []string {
	if name == nil {
		return appendField(nil, field.ErrorList{field.Required(fieldPath("metadata.name"), "")})
	}
	var list field.ErrorList
	for _, msg := range isDNS1123Subdomain(*name) {
		list = append(list, field.Invalid(fieldPath("metadata.name"), *name, msg))
	}
	return appendField(nil, list)
}

// validateLabels checks labels as Kubernetes does (keys qualified names,
// values at most 63 characters of a restricted alphabet), in key order so
// that messages are stable.
func validateLabels(labels map[string]string, p string) []string {
	var list field.ErrorList
	for _, k := range sortedKeysOf(labels) {
		for _, msg := range isQualifiedName(k) {
			list = append(list, field.Invalid(fieldPath(p), k, msg))
		}
		for _, msg := range isLabelValue(labels[k]) {
			list = append(list, field.Invalid(fieldPath(p), labels[k], msg))
		}
	}
	return appendField(nil, list)
}

// sortedKeysOf returns a string map's keys in order.
func sortedKeysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validateSpec checks a device spec (or fleet template spec) the way the
// server's handler does. The spec has passed checkSpecSchema.
func validateSpec(spec map[string]any, fleetTemplate bool) []string {
	var errs []string
	if _, ok := spec["consoles"]; ok {
		errs = append(errs, "consoles are not supported through this api")
	}
	if osSpec, ok := spec["os"].(map[string]any); ok {
		img, _ := osSpec["image"].(string)
		errs = append(errs, validateImage(img, "spec.os.image", false, fleetTemplate)...)
	}
	list, _ := spec["applications"].([]any)
	seen := map[string]bool{}
	for _, it := range list {
		// For PUT and POST the schema stage has already checked the shape
		// of each application; a PATCH result reaches here unchecked, and
		// the real server then answers with these handler messages.
		app, _ := it.(map[string]any)
		appType, _ := app["appType"].(string)
		if appType == "" {
			errs = append(errs, "app type must be defined")
			continue
		}
		switch appType {
		case flightctl.AppTypeContainer, flightctl.AppTypeHelm, flightctl.AppTypeCompose, flightctl.AppTypeQuadlet:
		default:
			errs = append(errs, "unknown application type: "+appType)
			continue
		}
		name, err := ensureAppName(app, appType)
		if err != "" {
			errs = append(errs, err)
			continue
		}
		if seen[name] {
			errs = append(errs, "duplicate application name: "+name)
			continue
		}
		seen[name] = true
		if n, ok := app["name"].(string); ok {
			errs = append(errs, validateString(n, "spec.applications[].name", 1, maxNameLength, appNameRegexp, dns1123LabelFmt)...)
		}
		prefix := fmt.Sprintf("spec.applications[%s]", name)
		image, hasImage := app["image"].(string)
		switch appType {
		case flightctl.AppTypeContainer:
			errs = append(errs, validateImage(image, prefix+".image", false, fleetTemplate)...)
			errs = append(errs, validatePorts(app["ports"], prefix+".ports")...)
			errs = append(errs, validateLimits(app["resources"], prefix+".resources.limits")...)
		case flightctl.AppTypeHelm:
			errs = append(errs, validateImage(image, prefix+".image", false, fleetTemplate)...)
		case flightctl.AppTypeCompose, flightctl.AppTypeQuadlet:
			_, hasInline := app["inline"]
			switch {
			case hasImage:
				errs = append(errs, validateImage(image, prefix+".image", false, fleetTemplate)...)
			case hasInline:
				errs = append(errs, validateInline(app, appType, fleetTemplate)...)
			default:
				errs = append(errs, fmt.Sprintf("invalid %s application provider type: neither image nor inline is set", appType))
			}
		}
		errs = append(errs, validateEnvVars(app["envVars"], prefix+".envVars")...)
	}
	return errs
}

// ensureAppName returns an application's effective name: its name, or for
// image applications the image, as the real server does.
func ensureAppName(app map[string]any, appType string) (string, string) {
	if n, _ := app["name"].(string); n != "" {
		return n, ""
	}
	image, _ := app["image"].(string)
	switch appType {
	case flightctl.AppTypeContainer, flightctl.AppTypeHelm:
		if image == "" {
			return "", appType + " image cannot be empty when application name is not provided"
		}
		return image, ""
	default:
		if _, inline := app["inline"]; inline {
			return "", "inline " + appType + " application name cannot be empty"
		}
		if image == "" {
			return "", appType + " image cannot be empty when application name is not provided"
		}
		return image, ""
	}
}

// validatePorts checks container port mappings ("8080:80").
func validatePorts(v any, p string) []string {
	list, _ := v.([]any)
	var errs []string
	for i, it := range list {
		s, _ := it.(string)
		if !portRegexp.MatchString(s) {
			errs = append(errs, fmt.Sprintf("%s[%d]: must be in format 'portnumber:portnumber', got %q", p, i, s))
			continue
		}
		for _, part := range strings.Split(s, ":") {
			n, err := strconv.Atoi(part)
			if err != nil || n < 1 || n > 65535 {
				errs = append(errs, fmt.Sprintf("%s[%d]: must be a number in the valid port range of [1, 65535], got: %q", p, i, part))
			}
		}
	}
	return errs
}

// validateLimits checks a container application's resource limits.
func validateLimits(v any, p string) []string {
	res, _ := v.(map[string]any)
	limits, _ := res["limits"].(map[string]any)
	var errs []string
	if cpu, ok := limits["cpu"].(string); ok {
		f, err := strconv.ParseFloat(cpu, 64)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s.cpu: must be a valid number, got %q", p, cpu))
		case f < 0:
			errs = append(errs, fmt.Sprintf("%s.cpu: must be positive. got %q", p, cpu))
		}
	}
	if mem, ok := limits["memory"].(string); ok && !memoryLimitRegexp.MatchString(mem) {
		errs = append(errs, fmt.Sprintf("%s.memory: must be in format 'number[unit]' where unit is b, k, m, or g, got %q", p, mem))
	}
	return errs
}

// validateEnvVars checks environment variable names and values. Like the
// real server, an empty value is refused.
func validateEnvVars(v any, p string) []string {
	env, _ := v.(map[string]any)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		errs = append(errs, validateString(k, p, 1, maxNameLength, envVarNameRegexp, "")...)
		val, ok := env[k].(string)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: value of %q must be a string", p, k))
			continue
		}
		errs = append(errs, validateString(val, p, 1, maxNameLength, nil, "")...)
	}
	return errs
}

// validateInline checks the inline files of a compose or quadlet
// application: paths, encodings, and the files' contents.
func validateInline(app map[string]any, appType string, fleetTemplate bool) []string {
	var errs []string
	list, _ := app["inline"].([]any)
	seenPath := map[string]bool{}
	composePaths := map[string]bool{}
	quadlets := map[string]*quadletRefs{}
	for i, it := range list {
		f, _ := it.(map[string]any)
		p, _ := f["path"].(string)
		if seenPath[p] {
			errs = append(errs, "duplicate inline path: "+p)
		}
		seenPath[p] = true
		prefix := fmt.Sprintf("spec.applications[].inline[%d]", i)
		errs = append(errs, validateRelativePath(p, prefix+".path")...)
		content, _ := f["content"].(string)
		if content == "" {
			continue
		}
		data := []byte(content)
		if enc, _ := f["contentEncoding"].(string); enc == "base64" {
			b, err := base64.StdEncoding.DecodeString(content)
			if err != nil {
				errs = append(errs, "decode base64 content: "+err.Error())
				continue
			}
			data = b
		}
		if len(data) > maxInlineLength {
			errs = append(errs, appendField(nil, field.ErrorList{field.TooLong(fieldPath(prefix+".content"), string(data), maxInlineLength)})...)
		}
		switch appType {
		case flightctl.AppTypeCompose:
			composePaths[p] = true
			errs = append(errs, validateComposeContent(data, fleetTemplate)...)
		case flightctl.AppTypeQuadlet:
			if !isQuadletFile(p) {
				continue
			}
			q, err := parseQuadlet(data)
			if err != nil {
				errs = append(errs, fmt.Sprintf("parse quadlet spec %q: %v", p, err))
				continue
			}
			quadlets[p] = q
			errs = append(errs, validateQuadletUnit(q, p, fleetTemplate)...)
		}
	}
	switch appType {
	case flightctl.AppTypeCompose:
		if err := validateComposePaths(sortedKeys(composePaths)); err != "" {
			errs = append(errs, "spec.applications[].inline[].path: "+err)
		}
	case flightctl.AppTypeQuadlet:
		paths := make([]string, 0, len(quadlets))
		for p := range quadlets {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		if err := validateQuadletPaths(paths); err != "" {
			errs = append(errs, "spec.applications[].inline[].path: "+err)
		}
		errs = append(errs, validateQuadletRefs(quadlets, paths)...)
	}
	return errs
}

// validateRelativePath checks an inline file path.
func validateRelativePath(p, fp string) []string {
	var list field.ErrorList
	if len(p) > maxNameLength {
		list = append(list, field.Invalid(fieldPath(fp), p, "must be less than max characters: "+strconv.Itoa(maxNameLength)))
	}
	if filepath.IsAbs(p) {
		list = append(list, field.Invalid(fieldPath(fp), p, "must be a relative path"))
	}
	if strings.HasPrefix(p, "..") || strings.Contains(p, "/../") {
		list = append(list, field.Invalid(fieldPath(fp), p, "must not contain '..' (parent directory references)"))
	}
	if filepath.Clean(p) != p && !strings.HasPrefix(p, "./") {
		list = append(list, field.Invalid(fieldPath(fp), p, "must be a clean path without redundant separators or internal '..'"))
	}
	return appendField(nil, list)
}

// validateComposeContent checks one compose file.
func validateComposeContent(data []byte, fleetTemplate bool) []string {
	cf, err := parseCompose(data)
	if err != nil {
		return []string{"parse compose spec: " + err.Error()}
	}
	if len(cf.Services) == 0 {
		return []string{"compose spec has no services"}
	}
	var errs []string
	for _, name := range sortedServiceNames(cf) {
		svc := cf.Services[name]
		if svc.ContainerName != "" {
			errs = append(errs, fmt.Sprintf("service %s has a hardcoded container_name %q which is not supported", name, svc.ContainerName))
		}
		if svc.Image == "" {
			errs = append(errs, fmt.Sprintf("service %s is missing an image", name))
		}
		errs = append(errs, validateImage(svc.Image, "services."+name+".image", true, fleetTemplate)...)
	}
	return errs
}

// composeBaseNames are the compose file names Flightctl accepts.
var composeBaseNames = []string{"docker-compose.yaml", "docker-compose.yml", "podman-compose.yaml", "podman-compose.yml"}

// validateComposePaths checks the set of compose file paths of one
// application: one base file and at most one override of the same tool.
func validateComposePaths(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	if len(paths) > 2 {
		return "too many compose paths: only one base and one override allowed"
	}
	var base, override string
	for _, p := range paths {
		if path.Base(p) != p {
			return fmt.Sprintf("compose file must be at root level: %q", p)
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return fmt.Sprintf("compose path must have .yaml or .yml extension: %q", p)
		}
		if strings.Contains(p, ".override.") {
			if !strings.HasPrefix(p, "docker-compose.") && !strings.HasPrefix(p, "podman-compose.") {
				return fmt.Sprintf("invalid override compose path: %q", p)
			}
			if override != "" {
				return fmt.Sprintf("multiple override compose paths provided: %q and %q", override, p)
			}
			override = p
			continue
		}
		known := false
		for _, n := range composeBaseNames {
			known = known || p == n
		}
		if !known {
			return fmt.Sprintf("invalid compose path: %q, supported paths: %v", p, strings.Join(composeBaseNames, ", "))
		}
		if base != "" {
			return fmt.Sprintf("multiple compose paths provided: %q and %q", base, p)
		}
		base = p
	}
	if len(paths) == 1 {
		if base == "" {
			return fmt.Sprintf("override path %q cannot be used without a base path", paths[0])
		}
		return ""
	}
	if strings.SplitN(base, "-", 2)[0] != strings.SplitN(override, "-", 2)[0] {
		return fmt.Sprintf("mismatched tool types: base is %q, override is %q", base, override)
	}
	return ""
}

// validateQuadletUnit checks one quadlet unit.
func validateQuadletUnit(q *quadletRefs, p string, fleetTemplate bool) []string {
	var errs []string
	want := "." + q.kind
	if ext := path.Ext(p); ext != want {
		errs = append(errs, fmt.Sprintf("quadlet type %q does not match file extension %q (expected %q)", q.kind, ext, want))
	}
	switch q.kind {
	case quadletContainer:
		if q.image == nil {
			errs = append(errs, ".container quadlet must have an Image key")
			break
		}
		img := *q.image
		switch {
		case strings.HasSuffix(img, ".build"):
			errs = append(errs, ".build quadlet types are unsupported: "+img)
		case strings.HasSuffix(img, ".image"):
		default:
			if e := validateImage(img, "container.image", true, fleetTemplate); len(e) > 0 {
				errs = append(errs, strings.Join(e, "\n"))
			}
		}
	case quadletVolume:
		if q.image != nil && !strings.HasSuffix(*q.image, ".image") {
			errs = append(errs, validateImage(*q.image, "volume.image", true, fleetTemplate)...)
		}
	case quadletImage:
		if q.image == nil {
			errs = append(errs, ".image quadlet must have an Image key")
		} else {
			errs = append(errs, validateImage(*q.image, "image.image", true, fleetTemplate)...)
		}
	}
	return errs
}

// validateQuadletPaths checks the set of quadlet unit paths of one
// application. Several problems are joined into one message, as errors.Join
// does on the real server.
func validateQuadletPaths(paths []string) string {
	if len(paths) == 0 {
		return "no paths provided"
	}
	var problems []string
	supported, workload := false, false
	for _, p := range paths {
		ext := path.Ext(p)
		if supportedQuadletExt[ext] {
			if path.Base(p) != p {
				problems = append(problems, fmt.Sprintf("quadlet file must be at root level: %q", p))
			}
			supported = true
			workload = workload || ext == ".container"
			continue
		}
		if unsupportedQuadletExt[ext] {
			problems = append(problems, fmt.Sprintf("unsupported quadlet type %q in path: %s", ext, p))
		}
	}
	if !supported {
		problems = append(problems, "no supported quadlet types supplied")
	}
	if !workload {
		problems = append(problems, "at least one quadlet workload must be supplied")
	}
	return strings.Join(problems, "\n")
}

// validateQuadletRefs checks that units only reference units of the same
// application (applications are namespaced on the device).
func validateQuadletRefs(quadlets map[string]*quadletRefs, paths []string) []string {
	var errs []string
	missing := func(from, ref string) {
		if _, ok := quadlets[ref]; !ok {
			errs = append(errs, fmt.Sprintf("quadlet file %q references %q which is not defined in the application", from, ref))
		}
	}
	for _, p := range paths {
		q := quadlets[p]
		if q.image != nil && strings.HasSuffix(*q.image, ".image") {
			missing(p, *q.image)
		}
		for _, r := range q.volumes {
			missing(p, r)
		}
		for _, r := range q.networks {
			missing(p, r)
		}
		for _, r := range q.pods {
			missing(p, r)
		}
	}
	return errs
}

// sortedKeys returns a set's members in order.
func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
