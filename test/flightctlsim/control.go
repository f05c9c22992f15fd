package flightctlsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// The control API lets tests and the flightctl-sim CLI steer the
// simulation over HTTP: cut a device off and bring it back, read request
// counters, and inject faults while a provider is running. It requires the
// same bearer token as the Flightctl API and is never subject to faults.

// ControlDevice is the control API's view of a device.
type ControlDevice struct {
	// Name is the device name.
	Name string `json:"name"`
	// ResourceVersion is the device's current resourceVersion.
	ResourceVersion int64 `json:"resourceVersion"`
	// HasAgent tells whether the device has a simulated agent.
	HasAgent bool `json:"hasAgent"`
	// AgentConnected tells whether the agent is reporting.
	AgentConnected bool `json:"agentConnected"`
	// Disconnected tells whether the server has marked the device
	// disconnected (after the detection delay).
	Disconnected bool `json:"disconnected"`
	// LastSeen is what GET .../lastseen reports; absent if never seen.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// SummaryStatus is status.summary.status.
	SummaryStatus string `json:"summaryStatus"`
}

// controlDevice builds the control API's view of a device.
func (s *Sim) controlDevice(name string) (ControlDevice, bool) {
	snap, ok := s.GetDevice(name)
	if !ok {
		return ControlDevice{}, false
	}
	return ControlDevice{
		Name: snap.Name, ResourceVersion: snap.ResourceVersion, HasAgent: snap.HasAgent,
		AgentConnected: snap.AgentConnected, Disconnected: snap.Disconnected,
		LastSeen: snap.LastSeen, SummaryStatus: snap.Status.Summary.Status,
	}, true
}

// writeControlDevice answers with a device's control view.
func (s *Sim) writeControlDevice(w http.ResponseWriter, name string) {
	cd, ok := s.controlDevice(name)
	if !ok {
		notFound(w, "Device", name)
		return
	}
	writeJSON(w, http.StatusOK, mustMarshal(cd))
}

// simGetDevice serves GET /sim/v1/devices/{name}.
func (s *Sim) simGetDevice(w http.ResponseWriter, r *http.Request) {
	s.writeControlDevice(w, r.PathValue("name"))
}

// simDisconnect serves POST /sim/v1/devices/{name}/disconnect.
func (s *Sim) simDisconnect(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.Disconnect(name); errors.Is(err, ErrNotFound) {
		notFound(w, "Device", name)
		return
	}
	s.writeControlDevice(w, name)
}

// simAddDevice serves POST /sim/v1/devices: a DeviceConfig (as in a
// config file) becomes a device with its agent, as Sim.AddDevice. An
// existing name answers 409, so a script can add its devices again.
func (s *Sim) simAddDevice(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var cfg DeviceConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		writeStatus(w, http.StatusBadRequest, "device config: "+err.Error())
		return
	}
	s.mu.RLock()
	_, exists := s.devices[cfg.Name]
	s.mu.RUnlock()
	if exists {
		writeStatus(w, http.StatusConflict, msgExists)
		return
	}
	if err := s.AddDevice(cfg); err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	s.writeControlDevice(w, cfg.Name)
}

// simReconnect serves POST /sim/v1/devices/{name}/reconnect.
func (s *Sim) simReconnect(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.Reconnect(name); errors.Is(err, ErrNotFound) {
		notFound(w, "Device", name)
		return
	}
	s.writeControlDevice(w, name)
}

// simStats serves GET /sim/v1/stats.
func (s *Sim) simStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustMarshal(s.Stats()))
}

// simResetStats serves POST /sim/v1/stats/reset.
func (s *Sim) simResetStats(w http.ResponseWriter, _ *http.Request) {
	s.ResetStats()
	writeJSON(w, http.StatusOK, mustMarshal(s.Stats()))
}

// simGetFaults serves GET /sim/v1/faults.
func (s *Sim) simGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustMarshal(s.Faults()))
}

// simSetFaults serves POST /sim/v1/faults: the body replaces all faults
// ({} clears them).
func (s *Sim) simSetFaults(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeStatus(w, http.StatusBadRequest, "invalid faults: "+err.Error())
		return
	}
	if err := s.SetFaults(f); err != nil {
		writeStatus(w, http.StatusBadRequest, "invalid faults: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, mustMarshal(s.Faults()))
}
