package flightctlsim

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// JSON patch handling (RFC 6902) with the real server's rules: the
// Content-Type must be application/json-patch+json, operations are limited
// to add, replace, remove and test, and a failed test is a 400 (not a
// 409), worded by the same patch library the real server uses.

// patchContentType is the only Content-Type PATCH accepts.
const patchContentType = "application/json-patch+json"

// allowedPatchOps are the operations the PatchRequest schema allows.
var allowedPatchOps = map[string]bool{"add": true, "replace": true, "remove": true, "test": true}

// checkPatchContentType returns the real server's message for a PATCH with
// the wrong Content-Type, or "".
func checkPatchContentType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == patchContentType {
		return ""
	}
	return fmt.Sprintf("API Error: request body has an error: header Content-Type has unexpected value %q", ct)
}

// decodePatch parses and schema-checks a patch document.
func decodePatch(raw []byte) (jsonpatch.Patch, string) {
	var ops []map[string]any
	if err := json.Unmarshal(raw, &ops); err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	for i, op := range ops {
		name, ok := op["op"].(string)
		if !ok {
			return nil, requestBodyError("PatchRequest", fmt.Sprintf("/%d/op", i), `property "op" is missing`)
		}
		if !allowedPatchOps[name] {
			return nil, requestBodyError("PatchRequest", fmt.Sprintf("/%d/op", i), `value is not one of the allowed values ["add","replace","remove","test"]`)
		}
		if _, ok := op["path"].(string); !ok {
			return nil, requestBodyError("PatchRequest", fmt.Sprintf("/%d/path", i), `property "path" is missing`)
		}
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	return p, ""
}

// applyPatch applies a patch to a document with the real server's error
// wording.
func applyPatch(p jsonpatch.Patch, doc []byte) ([]byte, string) {
	out, err := p.Apply(doc)
	if err != nil {
		return nil, "failed to apply JSON patch: " + err.Error()
	}
	return out, ""
}
