package contract

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestContractSimulatorHTTP runs the suite against the simulator over plain
// HTTP: the path a quickstart or a test cluster uses.
func TestContractSimulatorHTTP(t *testing.T) {
	t.Parallel()
	runContract(t, newSimTarget(t, false))
}

// TestContractSimulatorHTTPS runs the suite against the simulator over
// HTTPS, trusting its generated CA as a provider trusts a private Flightctl
// CA, and adds the certificate verification cases.
func TestContractSimulatorHTTPS(t *testing.T) {
	t.Parallel()
	runContract(t, newSimTarget(t, true))
}

// TestRealFlightctl runs the suite against a real Flightctl named by
// FLIGHTCTL_CONTRACT_URL, _TOKEN and _CA. Without them it is the one test
// of the package that does not run, and says so.
func TestRealFlightctl(t *testing.T) {
	tg := realTargetFromEnv(t)
	if tg == nil {
		t.Skip("FLIGHTCTL_CONTRACT_URL not set: the contract suite ran against the simulator only; set FLIGHTCTL_CONTRACT_URL/TOKEN/CA to run it against a real Flightctl (make test-real does)")
	}
	t.Logf("flightctl-api at %s reports version %s", tg.Config().Server, serverVersion(t, tg))
	runContract(t, tg)
}

// contractCase is one area of the contract. Cases run one after another
// on a target: the sim-only ones change server-wide state (faults), and a
// real server is shared with others, so nothing is gained by racing them.
type contractCase struct {
	name  string
	needs needs
	run   func(t *testing.T, tg Target)
}

// contractCases lists the whole suite. Every client call appears in at
// least one case; cases are named after the call or the concern.
var contractCases = []contractCase{
	// Devices.
	{name: "CreateGetDeleteDevice", run: testCreateGetDeleteDevice},
	{name: "ReplaceDevice", run: testReplaceDevice},
	{name: "ReplaceDeviceOwnedByFleet", run: testReplaceDeviceOwnedByFleet},
	{name: "PatchDevice", run: testPatchDevice},
	{name: "DeviceStatus", run: testDeviceStatus},
	{name: "GetLastSeen", run: testGetLastSeen},
	{name: "GetLastSeenReportingDevice", run: testGetLastSeenReporting},
	{name: "AgentAppliesSpec", run: testAgentAppliesSpec},
	{name: "AgentFailedPrepare", run: testAgentFailedPrepare},
	{name: "AgentlessStatusAfterSpecWrite", run: testAgentlessStatusAfterSpecWrite},

	// Lists.
	{name: "ListDevicesSelectors", run: testListDevicesSelectors},
	{name: "ListDevicesInvalidQuery", run: testListInvalidQuery},
	{name: "DevicePaging", run: testDevicePaging},
	{name: "DevicePagingEdgeCases", run: testDevicePagingEdgeCases},

	// Fleets.
	{name: "Fleets", run: testFleets},
	{name: "FleetTemplateWrites", run: testFleetTemplateWrites},

	// Events.
	{name: "ListEvents", run: testListEvents},
	{name: "DeviceDisconnectedEvents", needs: needSim, run: testDisconnectEvents},

	// Errors the provider must classify.
	{name: "Authentication", run: testAuthentication},
	{name: "NotFound", run: testNotFound},
	{name: "Validation", run: testValidation},

	// Transport: TLS, retries and injected faults.
	{name: "TLS", needs: needTLS, run: testTLS},
	{name: "TLSWithoutCA", needs: needPrivateCA, run: testTLSWithoutCA},
	{name: "ClientYAML", run: testClientYAML},
	{name: "RetryServerErrors", needs: needSim, run: testRetryServerErrors},
	{name: "RetrySeededErrorRate", needs: needSim, run: testRetrySeededErrorRate},
	{name: "ForcedConflicts", needs: needSim, run: testForcedConflicts},
	{name: "Unreachable", needs: needSim, run: testUnreachable},
	{name: "SlowServer", needs: needSim, run: testSlowServer},
}

// runContract runs every case the target supports and logs the others with
// the reason, so that a run against a real server shows what it did not
// cover instead of silently passing fewer tests.
func runContract(t *testing.T, tg Target) {
	t.Logf("contract suite against %s, object prefix %s", tg.Name(), tg.Prefix())
	var notRun []string
	for _, c := range contractCases {
		if why := c.needs.missing(tg); why != "" {
			notRun = append(notRun, c.name+" ("+why+")")
			continue
		}
		t.Run(c.name, func(t *testing.T) { c.run(t, tg) })
	}
	if len(notRun) > 0 {
		t.Logf("not applicable to %s, not run: %s", tg.Name(), strings.Join(notRun, "; "))
	}
}

// serverVersion asks GET /api/v1/version, so that the log says which
// Flightctl the suite ran against.
func serverVersion(t *testing.T, tg Target) string {
	t.Helper()
	cfg := tg.Config()
	pool := x509.NewCertPool()
	if len(cfg.CAData) > 0 && !pool.AppendCertsFromPEM(cfg.CAData) {
		t.Fatal("no certificate in the CA")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(cfg.CAData) > 0 {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimRight(cfg.Server, "/")+"/api/v1/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/version: %v", err)
	}
	defer resp.Body.Close()
	var v struct {
		Version string `json:"version"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil || v.Version == "" {
		t.Fatalf("GET /api/v1/version answered %s without a version", resp.Status)
	}
	return v.Version
}
