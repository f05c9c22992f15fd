package placement

import (
	"fmt"
	"testing"
)

// BenchmarkPlace places pods one after another on a fleet of 100 devices
// in name order, as the inventory hands them over: the manager's cost per
// pod created in the 10k-pod bench (each binding there has 100 devices).
func BenchmarkPlace(b *testing.B) {
	fleet := make([]Device, 100)
	for i := range fleet {
		fleet[i] = quickstartDevice(fmt.Sprintf("dev-%03d", i))
	}
	pods := make([]string, 1000)
	for i := range pods {
		pods[i] = fmt.Sprintf("p%04d", i)
	}
	b.ReportAllocs()
	l := NewLedger()
	i := 0
	for b.Loop() {
		if i%len(pods) == 0 {
			l = NewLedger()
		}
		if _, err := Place(newPod(pods[i%len(pods)], "10m", "16Mi"), fleet, l); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
