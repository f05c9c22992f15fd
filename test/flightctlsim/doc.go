// Package flightctlsim is an in-memory simulator of the subset of the
// Flightctl v1.2 user API (flightctl.io/v1beta1) that vk-flightctl uses:
// devices, fleets, events, device status and lastSeen, plus a simulated
// device agent per device and a small control API for tests.
//
// The simulator exists so that the provider can be developed and tested
// without a Flightctl server, PostgreSQL and real edge devices. It is only
// useful if a provider that passes against it also works against a real
// server, so it copies the real server's wire format, including its error
// messages, status codes, resourceVersion/generation movement, paging tokens
// and ownership rules, as recorded in the transcripts under
// provider/flightctl/testdata/transcripts (taken from a real v1.2.0 server).
//
// # Timing model
//
// Everything that the real server does asynchronously (rendering a new
// spec, fleet ownership, the agent applying a spec, disconnect detection)
// runs on one scheduler goroutine with a timer heap, so ten thousand
// devices cost no goroutines. Write responses therefore show the state
// before those steps, exactly like the real server. Tests that need the
// asynchronous work to be finished call [Sim.WaitIdle].
//
// # Simulated agents
//
// A device added with [Sim.AddDevice] (or from a config file) has an agent
// that reports status. When a newly rendered spec appears, each application
// goes Preparing, Starting and Running after [AgentDelays]. An image whose
// reference contains "/does-not-exist" or whose tag is "fail-pull" (for
// example quay.io/example/app:fail-pull) ends in Error instead, which is how
// tests provoke application failures. Other tags provoke the other things a
// real agent reports: "fail-prepare" (the update fails while preparing and
// rolls back, condition Updating reason Error), "stuck-preparing",
// "crashloop" (Error with restarts counting up) and "complete" (Completed).
// Devices created through the REST API
// have no agent by default, as on a real server where nobody enrolled them;
// see [Options.APIDevicesConnected] and [Sim.Reconnect].
//
// # Control API
//
// Besides the Flightctl paths the server answers, with the same bearer
// token, POST /sim/v1/devices (add a device with its agent),
// POST /sim/v1/devices/{name}/disconnect and .../reconnect,
// GET /sim/v1/devices/{name}, GET /sim/v1/stats, POST /sim/v1/stats/reset
// and GET|POST /sim/v1/faults. See README.md for the payloads.
//
// # Differences from a real server worth knowing
//
// A list request without limit (or with limit=0) returns at most 1000
// items and a continue token, as the v1.2 server does; clients must follow
// continue tokens. A disconnection records up to three DeviceDisconnected
// events (for summary, updated and applications status), also as the real
// server does.
package flightctlsim
