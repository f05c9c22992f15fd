package flightctlsim

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Label selectors use Kubernetes syntax, parsed by the same library the
// real server wraps, so that set syntax (`fleet in (a),!owned`) and error
// texts match. Field selectors are Flightctl's own: a fixed set of names
// per resource, the operators =, ==, !=, in, notin, exists (bare name) and
// !name, plus <, <=, >, >= on timestamps.

// parseLabelSelector parses a labelSelector query parameter. An empty
// string selects everything.
func parseLabelSelector(s string) (labels.Selector, string) {
	if strings.TrimSpace(s) == "" {
		return labels.Everything(), ""
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, "failed to parse label selector: invalid label selector syntax: " + err.Error()
	}
	return sel, ""
}

// fieldReq is one requirement of a field selector.
type fieldReq struct {
	key    string
	op     string
	values []string
}

// fieldSelector is a parsed field selector; all requirements must hold.
type fieldSelector []fieldReq

// Field selector operators.
const (
	opEq        = "="
	opNotEq     = "!="
	opIn        = "in"
	opNotIn     = "notin"
	opExists    = "exists"
	opNotExists = "!"
	opLt        = "<"
	opLe        = "<="
	opGt        = ">"
	opGe        = ">="
)

// Supported field selectors per resource, as the real server lists them.
var (
	deviceFieldSelectors = []string{
		"metadata.alias", "metadata.creationTimestamp", "metadata.name", "metadata.nameOrAlias",
		"metadata.owner", "status.applicationsSummary.status", "status.lifecycle.status",
		"status.summary.status", "status.updated.status",
	}
	fleetFieldSelectors = []string{"metadata.creationTimestamp", "metadata.name", "metadata.owner"}
	eventFieldSelectors = []string{
		"actor", "involvedObject.kind", "involvedObject.name", "metadata.creationTimestamp",
		"metadata.name", "metadata.owner", "reason", "type",
	}
)

// timestampFields are compared as times rather than strings.
var timestampFields = map[string]bool{"metadata.creationTimestamp": true}

// parseFieldSelector parses a fieldSelector query parameter against the
// names a resource supports.
func parseFieldSelector(s string, supported []string) (fieldSelector, string) {
	if strings.TrimSpace(s) == "" {
		return nil, ""
	}
	terms, err := splitTerms(s)
	if err != "" {
		return nil, "invalid field selector syntax: " + err
	}
	var fs fieldSelector
	for _, term := range terms {
		req, err := parseFieldTerm(term)
		if err != "" {
			return nil, "invalid field selector syntax: " + err
		}
		if !contains(supported, req.key) {
			return nil, fmt.Sprintf("unknown or unsupported selector: unable to resolve selector name %q. Supported selectors are: %v", req.key, supported)
		}
		if timestampFields[req.key] {
			for _, v := range req.values {
				if _, perr := time.Parse(time.RFC3339Nano, v); perr != nil {
					return nil, fmt.Sprintf("failed to parse field selector: failed to parse value for selector %q: %v", req.key, perr)
				}
			}
		} else if req.op == opLt || req.op == opLe || req.op == opGt || req.op == opGe {
			return nil, fmt.Sprintf("failed to parse field selector: failed to resolve operation for selector %q: operator %q is not supported for this field", req.key, req.op)
		}
		fs = append(fs, req)
	}
	return fs, ""
}

// splitTerms splits a selector on commas outside parentheses.
func splitTerms(s string) ([]string, string) {
	var terms []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, "unbalanced parentheses"
			}
		case ',':
			if depth == 0 {
				terms = append(terms, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, "unbalanced parentheses"
	}
	terms = append(terms, s[start:])
	for i, t := range terms {
		terms[i] = strings.TrimSpace(t)
		if terms[i] == "" {
			return nil, "empty requirement"
		}
	}
	return terms, ""
}

// parseFieldTerm parses one requirement.
func parseFieldTerm(t string) (fieldReq, string) {
	if strings.HasPrefix(t, "!") && !strings.ContainsAny(t[1:], "=<>! ") {
		return fieldReq{key: strings.TrimSpace(t[1:]), op: opNotExists}, ""
	}
	for _, op := range []string{" notin ", " in "} {
		if i := strings.Index(t, op); i > 0 {
			key := strings.TrimSpace(t[:i])
			rest := strings.TrimSpace(t[i+len(op):])
			if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
				return fieldReq{}, fmt.Sprintf("found '%s', expected: '('", rest)
			}
			var values []string
			for _, v := range strings.Split(rest[1:len(rest)-1], ",") {
				if v = strings.TrimSpace(v); v != "" {
					values = append(values, v)
				}
			}
			return fieldReq{key: key, op: strings.TrimSpace(op), values: values}, ""
		}
	}
	for _, op := range []string{"!=", "==", ">=", "<=", "=", ">", "<"} {
		if i := strings.Index(t, op); i >= 0 {
			key := strings.TrimSpace(t[:i])
			if key == "" {
				return fieldReq{}, fmt.Sprintf("found '%s', expected: identifier", op)
			}
			value := strings.TrimSpace(t[i+len(op):])
			if op == "==" {
				op = opEq
			}
			return fieldReq{key: key, op: op, values: []string{value}}, ""
		}
	}
	if strings.ContainsAny(t, " ()") {
		return fieldReq{}, fmt.Sprintf("unable to parse requirement: %q", t)
	}
	return fieldReq{key: t, op: opExists}, ""
}

// fieldGetter returns an object's value for a selector name and whether
// the field is set.
type fieldGetter func(key string) (string, bool)

// matches reports whether an object satisfies every requirement. An unset
// field compares as the empty string, which is how "metadata.owner!=X"
// also selects devices without an owner.
func (fs fieldSelector) matches(get fieldGetter) bool {
	for _, r := range fs {
		v, set := get(r.key)
		if !r.match(v, set) {
			return false
		}
	}
	return true
}

func (r fieldReq) match(v string, set bool) bool {
	switch r.op {
	case opExists:
		return set
	case opNotExists:
		return !set
	case opEq:
		return v == r.values[0]
	case opNotEq:
		return v != r.values[0]
	case opIn:
		return contains(r.values, v)
	case opNotIn:
		return !contains(r.values, v)
	case opLt, opLe, opGt, opGe:
		if !set {
			return false
		}
		have, err1 := time.Parse(time.RFC3339Nano, v)
		want, err2 := time.Parse(time.RFC3339Nano, r.values[0])
		if err1 != nil || err2 != nil {
			return false
		}
		switch r.op {
		case opLt:
			return have.Before(want)
		case opLe:
			return !have.After(want)
		case opGt:
			return have.After(want)
		default:
			return !have.Before(want)
		}
	}
	return false
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deviceField resolves device field selector names.
func deviceField(d *device) fieldGetter {
	return func(key string) (string, bool) {
		switch key {
		case "metadata.name":
			return d.name, true
		case "metadata.alias":
			a, ok := d.labels["alias"]
			return a, ok
		case "metadata.nameOrAlias":
			// Matching either the name or the alias is what nameOrAlias is
			// for; the getter returns the name and aliasMatch handles the
			// alias (see matchDevice).
			return d.name, true
		case "metadata.owner":
			return d.owner, d.owner != ""
		case "metadata.creationTimestamp":
			return d.created.Format(time.RFC3339Nano), true
		case "status.applicationsSummary.status":
			return d.status.ApplicationsSummary.Status, true
		case "status.lifecycle.status":
			return d.status.Lifecycle.Status, true
		case "status.summary.status":
			return d.status.Summary.Status, true
		case "status.updated.status":
			return d.status.Updated.Status, true
		}
		return "", false
	}
}

// matchDevice applies a field selector to a device. nameOrAlias is special:
// a requirement on it holds when it holds for the name or for the alias.
func matchDevice(fs fieldSelector, d *device) bool {
	get := deviceField(d)
	for _, r := range fs {
		if r.key == "metadata.nameOrAlias" {
			alias, hasAlias := d.labels["alias"]
			if r.match(d.name, true) || (hasAlias && r.match(alias, true)) {
				continue
			}
			return false
		}
		v, set := get(r.key)
		if !r.match(v, set) {
			return false
		}
	}
	return true
}
