package e2e

import (
	"fmt"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// The scenarios build on each other in quickstart order (scenario 6
// deletes scenario 1's pod), hence Ordered; ContinueOnFailure runs the
// rest after a failure, since each recreates what it needs, so one bug
// does not hide the verdict on the other scenarios.
var _ = Describe("Quickstart", Ordered, ContinueOnFailure, func() {
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			dumpLogs()
		}
	})

	for _, s := range quickstart.Scenarios() {
		// Scenario 5 waits for the reconnect timeout to expire, and on a
		// real Flightctl for its disconnect detection, twice.
		timeout := 3 * time.Minute
		if s.Number == 5 {
			timeout += 2*reconnectTimeout + 2*quickstart.RealDisconnectDetection
		}
		It(fmt.Sprintf("scenario %d: %s", s.Number, s.Title), func(ctx SpecContext) {
			if s.Number == 5 && stack.External() && os.Getenv("E2E_REAL_SCENARIO5") == "" {
				Skip("scenario 5 against a real Flightctl waits for its disconnect detection (5 min + a 2 min check, twice: 10-15 min); " +
					"set E2E_REAL_SCENARIO5=1 (make test-real-scenario5, make demo FLIGHTCTL=real) to run it")
			}
			res := quickstart.RunScenario(ctx, env, s)
			Expect(res.Err).NotTo(HaveOccurred(), "scenario %d (%s) failed after %s; its narration is above", s.Number, s.Title, res.Duration.Round(time.Millisecond))
		}, SpecTimeout(timeout))
	}
})
