package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// call is one client call made for its error.
type call struct {
	name string
	op   string
	do   func(context.Context, *flightctl.Client) error
}

// testAuthentication covers the two ways a request is not authenticated:
// no token reaches the server (400 "failed to get auth token", as when a
// proxy strips the header) and a token it rejects (401). Both are
// IsUnauthorized and nothing else, are never retried, and the error never
// shows either the rejected or the real token.
func testAuthentication(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	wrong := tg.Prefix() + "-not-a-valid-token-0123456789"
	created := f.name("unauthenticated")
	f.cleanupDevice(created) // in case a server accepted it after all
	calls := []call{
		{"ListDevices", flightctl.OpListDevices, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.ListDevices(ctx, flightctl.ListOptions{LabelSelector: f.selector()})
			return err
		}},
		{"GetDevice", flightctl.OpGetDevice, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetDevice(ctx, f.name("missing"))
			return err
		}},
		{"CreateDevice", flightctl.OpCreateDevice, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.CreateDevice(ctx, f.newDevice(created, specOf()))
			return err
		}},
		{"GetLastSeen", flightctl.OpGetLastSeen, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetLastSeen(ctx, f.name("missing"))
			return err
		}},
		{"ListFleets", flightctl.OpListFleets, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.ListFleets(ctx, flightctl.FleetListOptions{})
			return err
		}},
		{"ListEvents", flightctl.OpListEvents, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.ListEvents(ctx, flightctl.ListOptions{Limit: 1})
			return err
		}},
	}
	cases := []struct {
		name  string
		token string
		want  apiErr
	}{
		{"no token", "", apiErr{code: http.StatusBadRequest, is: []class{unauthorized}, msg: "failed to get auth token"}},
		{"wrong token", wrong, apiErr{code: http.StatusUnauthorized, is: []class{unauthorized}, msg: "failed to validate token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tg, func(cfg *flightctl.Config) { cfg.Token = tc.token })
			for _, cl := range calls {
				t.Run(cl.name, func(t *testing.T) {
					err := cl.do(t.Context(), c)
					expectAPIError(t, tg, err, tc.want)
					expectNoToken(t, err, wrong)
					if n := c.Stats().Requests[cl.op]; n != 1 {
						t.Errorf("%d requests, want 1: authentication failures are not retried", n)
					}
				})
			}
		})
	}
}

// testNotFound covers the 404 of every call that names an object (the
// provider tells "gone" from "failed" with IsNotFound alone), and the one
// exception: DELETE of a missing object succeeds.
func testNotFound(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	missing := f.name("missing")
	f.cleanupDevice(missing)
	f.cleanupFleet(missing)
	calls := []call{
		{"GetDevice", flightctl.OpGetDevice, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetDevice(ctx, missing)
			return err
		}},
		{"GetDeviceStatus", flightctl.OpGetDeviceStatus, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetDeviceStatus(ctx, missing)
			return err
		}},
		{"GetLastSeen", flightctl.OpGetLastSeen, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetLastSeen(ctx, missing)
			return err
		}},
		{"PatchDevice", flightctl.OpPatchDevice, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.PatchDevice(ctx, missing, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/x", Value: "y"}})
			return err
		}},
		{"ReplaceDeviceStatus", flightctl.OpReplaceDeviceStatus, func(ctx context.Context, c *flightctl.Client) error {
			d := f.newDevice(missing, specOf())
			d.Status = unknownStatus()
			_, err := c.ReplaceDeviceStatus(ctx, d)
			return err
		}},
		{"GetFleet", flightctl.OpGetFleet, func(ctx context.Context, c *flightctl.Client) error {
			_, err := c.GetFleet(ctx, missing)
			return err
		}},
	}
	for _, cl := range calls {
		t.Run(cl.name, func(t *testing.T) {
			c := newClient(t, tg)
			err := cl.do(t.Context(), c)
			expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}, msg: fmt.Sprintf("of name %q not found", missing)})
			if n := c.Stats().Requests[cl.op]; n != 1 {
				t.Errorf("%d requests, want 1: a 404 is not retried", n)
			}
		})
	}
	// DELETE is the exception: Flightctl v1.2.0 answers 200 Status Success
	// for a device or fleet that does not exist, so a provider that
	// deletes twice (after a retry, or racing another) sees success.
	for _, cl := range []call{
		{"DeleteDevice", flightctl.OpDeleteDevice, func(ctx context.Context, c *flightctl.Client) error {
			return c.DeleteDevice(ctx, missing)
		}},
		{"DeleteFleet", flightctl.OpDeleteFleet, func(ctx context.Context, c *flightctl.Client) error {
			return c.DeleteFleet(ctx, missing)
		}},
	} {
		t.Run(cl.name+"IsIdempotent", func(t *testing.T) {
			c := newClient(t, tg)
			if err := cl.do(t.Context(), c); err != nil {
				t.Errorf("%s of a missing object: %v, want success", cl.name, err)
			}
			if n := c.Stats().Requests[cl.op]; n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// testValidation covers specs the server refuses (400, IsInvalid, with
// the server's Kubernetes-style message) through both create and replace,
// and checks that a refused write changed nothing. The last rows are
// accepted: they mark where the provider's image normalisation is needed
// and where it is not.
func testValidation(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	existing := f.name("existing")
	f.createDevice(existing, specOf())
	long := fmt.Sprintf("%064d", 0)
	cases := []struct {
		name   string
		spec   *flightctl.DeviceSpec
		labels []string
		msg    string // "" means the write is accepted
	}{
		{name: "bad application name", spec: specOf(quadletApp("Bad Name!", testImage)), msg: `spec.applications[].name: Invalid value: "Bad Name!"`},
		{name: "unqualified image in quadlet", spec: specOf(quadletApp("q4", "nginx:latest")), msg: `container.image: Invalid value: "nginx:latest"`},
		{name: "unqualified image in compose", spec: specOf(composeApp("c1", "nginx:latest")), msg: `services.web.image: Invalid value: "nginx:latest"`},
		{name: "missing appType", spec: specOf(flightctl.ApplicationSpec{Name: "noapptype", Image: testImage}), msg: `discriminator property "appType"`},
		{name: "duplicate application names", spec: specOf(quadletApp("twin", testImage), quadletApp("twin", testImage)), msg: "duplicate application name: twin"},
		{name: "label value with spaces", spec: specOf(), labels: []string{"bad", "bad value with spaces"}, msg: `metadata.labels: Invalid value: "bad value with spaces"`},
		// The OpenAPI request validator refuses it before the handler's
		// label validation, with its own wording (Flightctl v1.2.0).
		{name: "label value over 63 characters", spec: specOf(), labels: []string{"long", long}, msg: `Error at "/metadata/labels/long": maximum string length is 63`},
		{name: "qualified image in quadlet is accepted", spec: specOf(quadletApp("q5", "docker.io/library/nginx:latest"))},
		{name: "short image in a container app is accepted", spec: specOf(flightctl.ApplicationSpec{Name: "ctr", AppType: flightctl.AppTypeContainer, Image: "nginx:latest"})},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.at(t)
			t.Run("create", func(t *testing.T) {
				f := f.at(t)
				name := f.name(fmt.Sprintf("v%d", i))
				f.cleanupDevice(name)
				_, err := f.c.CreateDevice(f.ctx(), f.newDevice(name, tc.spec, tc.labels...))
				if tc.msg == "" {
					if err != nil {
						t.Fatalf("CreateDevice: %v", err)
					}
					return
				}
				expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: tc.msg})
				_, err = f.c.GetDevice(f.ctx(), name)
				expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}})
			})
			t.Run("replace", func(t *testing.T) {
				f := f.at(t)
				_, err := f.c.ReplaceDevice(f.ctx(), f.newDevice(existing, tc.spec, tc.labels...))
				if tc.msg == "" {
					if err != nil {
						t.Fatalf("ReplaceDevice: %v", err)
					}
					return
				}
				expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: tc.msg})
			})
		})
	}
}

// unknownStatus is a complete status that claims nothing: the shape a
// device shows before its agent reports, valid against the schema so that
// the server gets as far as looking the device up. It sets integrity and os
// explicitly: the schema requires them and the client drops them when
// empty (see the DeviceStatus case).
func unknownStatus() *flightctl.DeviceStatus {
	st := minimalStatus()
	st.Integrity = map[string]json.RawMessage{"status": json.RawMessage(`"Unknown"`)}
	st.OS = map[string]string{"image": "", "imageDigest": ""}
	return st
}

// minimalStatus sets every DeviceStatus field the client does not mark
// optional, and nothing else.
func minimalStatus() *flightctl.DeviceStatus {
	const unknown = "Unknown"
	return &flightctl.DeviceStatus{
		Applications:        []flightctl.ApplicationStatus{},
		ApplicationsSummary: flightctl.ApplicationsSummaryStatus{Status: unknown},
		Conditions:          []flightctl.Condition{},
		Lifecycle:           flightctl.StatusWithInfo{Status: unknown},
		Resources:           flightctl.DeviceResourceStatus{CPU: unknown, Disk: unknown, Memory: unknown},
		Summary:             flightctl.StatusWithInfo{Status: unknown},
		SystemInfo:          map[string]string{"agentVersion": "", "architecture": "", "bootID": "", "operatingSystem": ""},
		Updated:             flightctl.StatusWithInfo{Status: unknown},
	}
}
