package flightctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchListing is a page of n devices shaped like a real v1.2.0 device
// running five quadlet pods (about 13 KB each): two inline files per
// application, status as the agent reports it.
func benchListing(b *testing.B, n int) []byte {
	b.Helper()
	unit := strings.Repeat("# vk-flightctl quadlet line, as long as a real one is\n", 22)
	list := DeviceList{APIVersion: APIVersion, Kind: KindDeviceList}
	for i := range n {
		name := fmt.Sprintf("device-%05d", i)
		d := Device{APIVersion: APIVersion, Kind: KindDevice,
			Metadata: ObjectMeta{Name: name, ResourceVersion: "42", Labels: map[string]string{"fleet": "edge", "site": "s1"},
				Annotations: map[string]string{AnnotationRenderedVersion: "7", AnnotationRenderedSpecHash: strings.Repeat("f", 64)}},
			Spec: &DeviceSpec{},
			Status: &DeviceStatus{Summary: StatusWithInfo{Status: DeviceSummaryOnline}, Updated: StatusWithInfo{Status: DeviceUpdatedUpToDate},
				ApplicationsSummary: ApplicationsSummaryStatus{Status: ApplicationsSummaryHealthy}, Config: DeviceConfigStatus{RenderedVersion: "7"},
				SystemInfo: map[string]string{"architecture": "amd64", "operatingSystem": "linux", "cpuCores": "4", "memoryTotalKb": "8388608", "netIpDefault": "192.0.2.7/24"},
				Conditions: []Condition{{Type: "Updating", Status: "False", Reason: "Updated"}}}}
		for a := range 5 {
			app := fmt.Sprintf("vk-default-pod-%d-%08x", a, i)
			d.Spec.Applications = append(d.Spec.Applications, ApplicationSpec{Name: app, AppType: AppTypeQuadlet, Inline: []InlineFile{
				{Path: app + ".pod", Content: "[Pod]\n" + unit}, {Path: app + "-web.container", Content: "[Container]\n" + unit}}})
			d.Status.Applications = append(d.Status.Applications, ApplicationStatus{Name: app, AppType: AppTypeQuadlet, Ready: "1/1", Status: ApplicationStatusRunning})
		}
		list.Items = append(list.Items, d)
	}
	body, err := json.Marshal(&list)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodeDeviceList decodes a 1,000-device page: "full" as the
// client did before lean decoding (read the body whole, unmarshal every
// device), "lean" as the per-device poller does, "lean-digests" as the
// fleet-wide one does. bytes/op is allocation, not peak: the full decode
// also holds the body and the whole page at once, the lean ones one
// device.
func BenchmarkDecodeDeviceList(b *testing.B) {
	body := benchListing(b, 1000)
	b.Logf("listing: %d bytes, %d per device", len(body), len(body)/1000)
	count := func(n *int) func(*ListedDevice) error {
		return func(*ListedDevice) error { *n++; return nil }
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, err := io.ReadAll(bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var l DeviceList
			if err := json.Unmarshal(raw, &l); err != nil || len(l.Items) != 1000 {
				b.Fatalf("%v, %d devices", err, len(l.Items))
			}
		}
	})
	for _, tc := range []struct {
		name   string
		digest AppDigestFunc
	}{{"lean", nil}, {"lean-digests", func(a ApplicationSpec) string { return a.Name }}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if _, err := ReadDeviceList(bytes.NewReader(body), tc.digest, count(&n)); err != nil || n != 1000 {
					b.Fatalf("%v, %d devices", err, n)
				}
			}
		})
	}
	// "lean-hot": every device hot, its JSON kept for the device writer
	// (the poller in a burst, when most devices are being written to).
	b.Run("lean-hot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, kept := 0, 0
			_, err := ReadDeviceListFull(bytes.NewReader(body), nil, func(string) bool { return true },
				func(_ *ListedDevice, raw json.RawMessage) error {
					n++
					kept += len(raw)
					return nil
				})
			if err != nil || n != 1000 || kept < len(body)*9/10 {
				b.Fatalf("%v, %d devices, %d bytes kept", err, n, kept)
			}
		}
	})
}
