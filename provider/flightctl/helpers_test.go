package flightctl

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// writeStatus answers like the real server does on errors.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Status{APIVersion: APIVersion, Kind: KindStatus, Code: int32(code),
		Reason: http.StatusText(code), Status: "Failure", Message: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func testDevice(name string) Device {
	return Device{APIVersion: APIVersion, Kind: KindDevice, Metadata: ObjectMeta{Name: name, ResourceVersion: "1"}, Spec: &DeviceSpec{}}
}

// closedAddr returns an address nothing listens on, for connection-refused
// failures.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// newServer starts a plain HTTP test server with h.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
