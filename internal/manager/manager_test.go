package manager

import (
	"strings"
	"testing"
)

func TestCheckPprofAddr(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:6060", "127.0.0.1:0", "[::1]:6060", "localhost:6060"} {
		if err := CheckPprofAddr(addr); err != nil {
			t.Errorf("CheckPprofAddr(%q) = %v, want nil", addr, err)
		}
	}
	for addr, want := range map[string]string{
		":6060":          "loopback",
		"0.0.0.0:6060":   "loopback",
		"10.0.0.5:6060":  "loopback",
		"example.com:80": "loopback",
		"127.0.0.1":      "want host:port",
		"127.0.0.1:http": "bad port",
	} {
		err := CheckPprofAddr(addr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPprofAddr(%q) = %v, want an error containing %q", addr, err, want)
		}
	}
}
