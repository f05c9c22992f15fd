package settings

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string]string
		want    Defaults
		wantErr string
	}{
		{name: "empty gives built-in defaults", data: nil, want: Builtin()},
		{name: "values", data: map[string]string{KeyReconnectTimeout: "30s", KeyStatusPollInterval: "2s"},
			want: Defaults{ReconnectTimeout: 30 * time.Second, StatusPollInterval: 2 * time.Second, DeployDeadline: DefaultDeployDeadline, FullResyncInterval: DefaultFullResyncInterval}},
		{name: "deploy deadline", data: map[string]string{KeyDeployDeadline: "90s"},
			want: Defaults{ReconnectTimeout: DefaultReconnectTimeout, StatusPollInterval: DefaultStatusPollInterval, DeployDeadline: 90 * time.Second, FullResyncInterval: DefaultFullResyncInterval}},
		{name: "deploy deadline below minimum", data: map[string]string{KeyDeployDeadline: "1s"},
			want: Builtin(), wantErr: "below the minimum 5s"},
		{name: "malformed value keeps the others", data: map[string]string{KeyReconnectTimeout: "five minutes", KeyStatusPollInterval: "3s"},
			want: Defaults{ReconnectTimeout: DefaultReconnectTimeout, StatusPollInterval: 3 * time.Second, DeployDeadline: DefaultDeployDeadline, FullResyncInterval: DefaultFullResyncInterval}, wantErr: "is not a duration"},
		{name: "full resync interval", data: map[string]string{KeyFullResyncInterval: "2m"},
			want: Defaults{ReconnectTimeout: DefaultReconnectTimeout, StatusPollInterval: DefaultStatusPollInterval, DeployDeadline: DefaultDeployDeadline, FullResyncInterval: 2 * time.Minute}},
		{name: "full resync interval below minimum", data: map[string]string{KeyFullResyncInterval: "5s"},
			want: Builtin(), wantErr: "below the minimum 10s"},
		{name: "below minimum", data: map[string]string{KeyReconnectTimeout: "1s"},
			want: Builtin(), wantErr: "below the minimum 10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.data)
			if got != tt.want {
				t.Errorf("Parse() = %+v, want %+v", got, tt.want)
			}
			if tt.wantErr == "" && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestForPrefersTheBinding(t *testing.T) {
	d := Defaults{ReconnectTimeout: time.Minute, StatusPollInterval: 2 * time.Second}
	b := &vkv1.FleetBinding{}
	if got := For(b, d); got.ReconnectTimeout != time.Minute || got.StatusPollInterval != 2*time.Second {
		t.Fatalf("For() without overrides = %+v", got)
	}
	b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 15 * time.Second}
	b.Spec.StatusPollInterval = &metav1.Duration{Duration: time.Second}
	b.Spec.DeployDeadline = &metav1.Duration{Duration: 30 * time.Second}
	b.Spec.FullResyncInterval = &metav1.Duration{Duration: 20 * time.Second}
	if got := For(b, d); got.ReconnectTimeout != 15*time.Second || got.StatusPollInterval != time.Second || got.DeployDeadline != 30*time.Second ||
		got.FullResyncInterval != 20*time.Second {
		t.Fatalf("For() with overrides = %+v", got)
	}
}
