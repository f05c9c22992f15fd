// Package contract is the contract suite of the Flightctl client
// (provider/flightctl). It drives every client call over real HTTP and HTTPS
// against a Flightctl API server and checks what the provider relies on:
// status codes, resourceVersion and generation movement, paging, selectors,
// fleet ownership, and the classification of every error (IsNotFound,
// IsConflict, IsStale, IsAlreadyExists, IsOwnedByFleet, IsUnauthorized,
// IsInvalid, IsRetryable), with the bearer token never showing in an error.
//
// By default the server is the simulator (test/flightctlsim), once over HTTP
// and once over HTTPS with its generated CA, so the suite pins the client and
// the simulator to the same contract: when one of them drifts from the real
// server, a test here fails. The same cases run against a real Flightctl when
// these variables are set:
//
//	FLIGHTCTL_CONTRACT_URL    API endpoint, e.g. https://api.flightctl.example:3443
//	FLIGHTCTL_CONTRACT_TOKEN  bearer token (e.g. from `flightctl login`)
//	FLIGHTCTL_CONTRACT_CA     optional PEM file of the CA that signed the server certificate
//
// Against a real server the suite only touches what it creates: names start
// with vkct-<random>, every object carries the label vkct-run=<that prefix>,
// every list selects on it, and everything is deleted when the test ends.
// Cases with a reporting device run there too: the device is enrolled and
// driven by a remote agent (flightctlsim.RemoteAgents) over the server's
// mTLS agent endpoint (from its enrollment config, or
// FLIGHTCTL_CONTRACT_AGENT_ENDPOINT). Cases that need the simulator's
// controls (injecting faults, a disconnect the server notices at once) do
// not run there; the test log names them. `make test-real` runs the suite
// against a real Flightctl v1.2.0 started by hack/real-flightctl.sh.
//
// The package has no non-test code besides this comment.
package contract
