package flightctl

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// JSON keys of the fields DeviceSpec and ApplicationSpec model. Everything
// else goes to Extra.
const (
	keyApplications = "applications"
	keyName         = "name"
	keyAppType      = "appType"
	keyImage        = "image"
	keyInline       = "inline"
	keyEnvVars      = "envVars"
)

// MarshalJSON writes the modelled fields over Extra, so that a spec read
// from the server goes back with every field this package does not know
// about. Keys come out sorted (encoding/json sorts map keys), which keeps
// request bodies and spec hashes stable. "applications" is emitted only
// when Applications is non-nil: an empty, non-nil slice clears the apps on
// the server, a nil one leaves whatever Extra says (normally nothing).
func (s DeviceSpec) MarshalJSON() ([]byte, error) {
	out := copyExtra(s.Extra, keyApplications)
	if s.Applications != nil {
		raw, err := json.Marshal(s.Applications)
		if err != nil {
			return nil, fmt.Errorf("marshal spec.applications: %w", err)
		}
		out[keyApplications] = raw
	}
	return json.Marshal(out)
}

// UnmarshalJSON keeps every key it does not model in Extra, verbatim, so a
// read-modify-write of a device never drops os, config, systemd,
// updatePolicy, resources, consoles or fields added by newer servers.
func (s *DeviceSpec) UnmarshalJSON(data []byte) error {
	if isJSONNull(data) {
		return nil
	}
	fields, err := decodeObject(data, "spec")
	if err != nil {
		return err
	}
	*s = DeviceSpec{}
	if raw, ok := fields[keyApplications]; ok {
		delete(fields, keyApplications)
		if !isJSONNull(raw) {
			if err := json.Unmarshal(raw, &s.Applications); err != nil {
				return fmt.Errorf("decode spec.applications: %w", err)
			}
		}
	}
	if len(fields) > 0 {
		s.Extra = fields
	}
	return nil
}

// MarshalJSON writes the modelled application fields over Extra. Name is
// always written (the server requires it); the others only when set, which
// matches how the server echoes applications back.
func (a ApplicationSpec) MarshalJSON() ([]byte, error) {
	out := copyExtra(a.Extra, keyName, keyAppType, keyImage, keyInline, keyEnvVars)
	put := func(key string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("marshal application %q field %s: %w", a.Name, key, err)
		}
		out[key] = raw
		return nil
	}
	if err := put(keyName, a.Name); err != nil {
		return nil, err
	}
	if a.AppType != "" {
		if err := put(keyAppType, a.AppType); err != nil {
			return nil, err
		}
	}
	if a.Image != "" {
		if err := put(keyImage, a.Image); err != nil {
			return nil, err
		}
	}
	if a.Inline != nil {
		if err := put(keyInline, a.Inline); err != nil {
			return nil, err
		}
	}
	if a.EnvVars != nil {
		if err := put(keyEnvVars, a.EnvVars); err != nil {
			return nil, err
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON keeps application fields it does not model (volumes, ports,
// resources, runAs, ...) in Extra, verbatim, including empty values such as
// the `"runAs": ""` the server adds to fleet-rendered quadlet apps.
func (a *ApplicationSpec) UnmarshalJSON(data []byte) error {
	if isJSONNull(data) {
		return nil
	}
	fields, err := decodeObject(data, "application")
	if err != nil {
		return err
	}
	*a = ApplicationSpec{}
	take := func(key string, dst any) error {
		raw, ok := fields[key]
		if !ok {
			return nil
		}
		delete(fields, key)
		if isJSONNull(raw) {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("decode application field %s: %w", key, err)
		}
		return nil
	}
	for _, f := range []struct {
		key string
		dst any
	}{
		{keyName, &a.Name},
		{keyAppType, &a.AppType},
		{keyImage, &a.Image},
		{keyInline, &a.Inline},
		{keyEnvVars, &a.EnvVars},
	} {
		if err := take(f.key, f.dst); err != nil {
			return err
		}
	}
	if len(fields) > 0 {
		a.Extra = fields
	}
	return nil
}

// copyExtra returns a fresh map holding extra without the modelled keys, so
// that marshalling never mutates the caller's Extra and a modelled field
// always wins over a stale copy of itself in Extra.
func copyExtra(extra map[string]json.RawMessage, modelled ...string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(extra)+len(modelled))
	for k, v := range extra {
		out[k] = v
	}
	for _, k := range modelled {
		delete(out, k)
	}
	return out
}

// decodeObject splits a JSON object into its members. json.RawMessage
// copies what it is given, so the values do not alias the caller's buffer.
func decodeObject(data []byte, what string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return fields, nil
}

func isJSONNull(data []byte) bool {
	return bytes.Equal(bytes.TrimSpace(data), []byte("null"))
}

// MarshalJSON writes empty lists and maps where Go has nil ones, as the real
// server does: its status schema requires applications, conditions,
// systemInfo, integrity and os, so a status PUT without them is refused,
// and a simulator using these types answers like the real server. Missing
// integrity and os get what the server shows for a device that never
// reported.
func (s DeviceStatus) MarshalJSON() ([]byte, error) {
	type plain DeviceStatus // no methods: no recursion
	p := plain(s)
	if len(p.Integrity) == 0 {
		p.Integrity = map[string]json.RawMessage{"status": json.RawMessage(`"Unknown"`)}
	}
	if len(p.OS) == 0 {
		p.OS = map[string]string{"image": "", "imageDigest": ""}
	}
	if p.Applications == nil {
		p.Applications = []ApplicationStatus{}
	}
	if p.Conditions == nil {
		p.Conditions = []Condition{}
	}
	if p.SystemInfo == nil {
		p.SystemInfo = map[string]string{}
	}
	return json.Marshal(p)
}

// MarshalJSON writes "items": [] for an empty page, as the real server does.
func (l DeviceList) MarshalJSON() ([]byte, error) {
	type plain DeviceList
	p := plain(l)
	if p.Items == nil {
		p.Items = []Device{}
	}
	return json.Marshal(p)
}

// MarshalJSON writes "items": [] for an empty page, as the real server does.
func (l FleetList) MarshalJSON() ([]byte, error) {
	type plain FleetList
	p := plain(l)
	if p.Items == nil {
		p.Items = []Fleet{}
	}
	return json.Marshal(p)
}

// MarshalJSON writes "items": [] for an empty page, as the real server does.
func (l EventList) MarshalJSON() ([]byte, error) {
	type plain EventList
	p := plain(l)
	if p.Items == nil {
		p.Items = []Event{}
	}
	return json.Marshal(p)
}
