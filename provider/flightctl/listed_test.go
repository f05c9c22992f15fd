package flightctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

// contentDigest depends on every modelled field of an application, so a
// lean listing that digests anything else than the full application
// gives a different value.
func contentDigest(a ApplicationSpec) string {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// listedFromFull is what the full decode of a list body gives, reduced
// with Device.Listed.
func listedFromFull(t *testing.T, body []byte, digest AppDigestFunc) ([]ListedDevice, ListMeta) {
	t.Helper()
	var l DeviceList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("full decode: %v", err)
	}
	var out []ListedDevice
	for i := range l.Items {
		out = append(out, l.Items[i].Listed(digest))
	}
	return out, l.Metadata
}

func listedLean(t *testing.T, body []byte, digest AppDigestFunc) ([]ListedDevice, ListMeta) {
	t.Helper()
	var out []ListedDevice
	meta, err := ReadDeviceList(bytes.NewReader(body), digest, func(d *ListedDevice) error {
		out = append(out, *d)
		return nil
	})
	if err != nil {
		t.Fatalf("lean decode: %v", err)
	}
	return out, meta
}

// Every DeviceList a real v1.2.0 server sent decodes the same through the
// lean reader as through the full decode, with and without digests.
func TestReadDeviceListMatchesFullDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lists := 0
	for _, f := range files {
		ex := loadTranscript(t, filepath.Base(f))
		if ex.StatusCode != http.StatusOK || !bytes.Contains(ex.ResponseBody, []byte(`"kind": "DeviceList"`)) {
			continue
		}
		lists++
		for _, digest := range []AppDigestFunc{nil, contentDigest} {
			full, fullMeta := listedFromFull(t, ex.ResponseBody, digest)
			lean, leanMeta := listedLean(t, ex.ResponseBody, digest)
			if !reflect.DeepEqual(full, lean) || !reflect.DeepEqual(fullMeta, leanMeta) {
				t.Errorf("%s (digest %v): lean decode differs\nfull %+v %+v\nlean %+v %+v",
					filepath.Base(f), digest != nil, full, fullMeta, lean, leanMeta)
			}
		}
	}
	if lists < 5 {
		t.Fatalf("only %d DeviceList transcripts found", lists)
	}
}

// The spec shapes a listing can carry, with the members around items in
// the server's alphabetical order and in the simulator's struct order.
func TestReadDeviceListShapes(t *testing.T) {
	body := `{"apiVersion":"flightctl.io/v1beta1","items":[
	 {"metadata":{"name":"none"}},
	 {"metadata":{"name":"null-spec"},"spec":null},
	 {"metadata":{"name":"empty"},"spec":{}},
	 {"metadata":{"name":"null-apps"},"spec":{"applications":null}},
	 {"metadata":{"name":"decom"},"spec":{"decommissioning":{"target":"Unenroll"},"os":{"image":"x"}}},
	 {"metadata":{"name":"decom-null"},"spec":{"decommissioning":null}},
	 {"metadata":{"name":"apps","owner":"Fleet/f"},"spec":{"applications":[
	   {"name":"a","appType":"quadlet","inline":[{"path":"a.container","content":"[Container]\nImage=x\n"}],"runAs":""},
	   {"name":"b","appType":"container","image":"quay.io/x:1","envVars":{"K":"V"},"ports":["80:80"]}]},
	  "status":{"summary":{"status":"Online"},"applications":[{"name":"a","ready":"1/1","status":"Running"}]}}
	],"kind":"DeviceList","metadata":{"continue":"next","remainingItemCount":3},"summary":{"total":7}}`
	for _, digest := range []AppDigestFunc{nil, contentDigest} {
		full, fullMeta := listedFromFull(t, []byte(body), digest)
		lean, leanMeta := listedLean(t, []byte(body), digest)
		if !reflect.DeepEqual(full, lean) || !reflect.DeepEqual(fullMeta, leanMeta) {
			t.Errorf("digest %v: lean decode differs\nfull %+v\nlean %+v", digest != nil, full, lean)
		}
		if leanMeta.Continue != "next" || len(lean) != 7 {
			t.Fatalf("got %d devices, continue %q", len(lean), leanMeta.Continue)
		}
		if !lean[4].Spec.Decommissioning || !lean[5].Spec.Decommissioning || lean[2].Spec.Decommissioning {
			t.Errorf("decommissioning = %v, %v, %v; want true, true (null is present), false",
				lean[4].Spec.Decommissioning, lean[5].Spec.Decommissioning, lean[2].Spec.Decommissioning)
		}
		apps := lean[6].Spec.Applications
		if len(apps) != 2 || apps[0].Name != "a" || apps[1].Name != "b" || (digest != nil) != (apps[0].Digest != "") {
			t.Errorf("applications = %+v", apps)
		}
	}
}

func TestReadDeviceListErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"empty", ``, "empty body"},
		{"wrong kind", `{"kind":"FleetList","items":[]}`, `kind "FleetList"`},
		{"foreign apiVersion", `{"apiVersion":"v1","items":[]}`, `apiVersion "v1"`},
		{"not an object", `[1]`, "not an object"},
		{"items not an array", `{"items":{}}`, "not an array"},
		{"truncated", `{"items":[{"metadata":{"name":"a"}}`, "unexpected EOF"},
		{"bad item", `{"items":[{"metadata":{"name":7}}]}`, "decode device"},
		{"trailing data", `{"items":[]} {}`, "data after"},
		{"HTML", `<html></html>`, "invalid character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadDeviceList(strings.NewReader(tc.body), nil, func(*ListedDevice) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
	t.Run("callback error as is", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := ReadDeviceList(strings.NewReader(`{"items":[{},{}]}`), nil, func(*ListedDevice) error { return boom })
		if err != boom { //nolint:errorlint // returned as is, unwrapped
			t.Errorf("err = %v, want the callback's error itself", err)
		}
	})
	t.Run("null items", func(t *testing.T) {
		n := 0
		if _, err := ReadDeviceList(strings.NewReader(`{"items":null}`), nil, func(*ListedDevice) error { n++; return nil }); err != nil || n != 0 {
			t.Errorf("err = %v, %d devices", err, n)
		}
	})
}

// The lean walk pages like ForEachDevice and keeps its contract for
// callback errors, ErrStopIteration and looping servers.
func TestForEachListedDevice(t *testing.T) {
	walk := func(c *Client, opts ListOptions, fn func(*ListedDevice) error) error {
		return c.ForEachListedDevice(context.Background(), opts, nil, fn)
	}
	t.Run("pages", func(t *testing.T) {
		ps := &pagingServer{n: 5}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		var got []string
		if err := walk(c, ListOptions{Limit: 2}, func(d *ListedDevice) error { got = append(got, d.Metadata.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[d0000 d0001 d0002 d0003 d0004]" || len(ps.limits) != 3 {
			t.Errorf("got %v in %d pages", got, len(ps.limits))
		}
		if s := c.Stats(); s.Calls[OpListDevices] != 3 || s.Failures[OpListDevices] != 0 {
			t.Errorf("stats: %d calls, %d errors; want 3 and 0", s.Calls[OpListDevices], s.Failures[OpListDevices])
		}
	})
	t.Run("callback error stops the walk", func(t *testing.T) {
		ps := &pagingServer{n: 10}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		boom := errors.New("boom")
		seen := 0
		err := walk(c, ListOptions{Limit: 2}, func(*ListedDevice) error {
			if seen++; seen == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || seen != 3 || len(ps.limits) != 2 {
			t.Fatalf("err=%v seen=%d pages=%d", err, seen, len(ps.limits))
		}
		if s := c.Stats(); s.Failures[OpListDevices] != 0 || s.TotalRequests() != 2 {
			t.Errorf("a callback's error is no failed call and is not retried: %+v", s)
		}
	})
	t.Run("ErrStopIteration ends early without error", func(t *testing.T) {
		ps := &pagingServer{n: 10}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		seen := 0
		err := walk(c, ListOptions{Limit: 2}, func(*ListedDevice) error {
			if seen++; seen == 3 {
				return ErrStopIteration
			}
			return nil
		})
		if err != nil || len(ps.limits) != 2 {
			t.Fatalf("err=%v pages=%d", err, len(ps.limits))
		}
	})
	t.Run("server repeats its continue token", func(t *testing.T) {
		ps := &pagingServer{n: 3, sameToken: true}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		if err := walk(c, ListOptions{Limit: 1}, func(*ListedDevice) error { return nil }); err == nil || len(ps.limits) > 3 {
			t.Fatalf("loop not detected: %v after %d pages", err, len(ps.limits))
		}
	})
	t.Run("API errors", func(t *testing.T) {
		c := newTestClient(t, newServer(t, (&pagingServer{n: 3}).ServeHTTP).URL)
		if err := walk(c, ListOptions{Continue: "!!garbage"}, func(*ListedDevice) error { return nil }); !IsInvalid(err) {
			t.Fatalf("want invalid, got %v", err)
		}
	})
}

// brokenOnce answers its first request with half a body and a closed
// connection, and the whole body afterwards.
func brokenOnce(t *testing.T, body []byte) (*atomic.Int32, string) {
	t.Helper()
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) > 1 {
			w.Header().Set("Content-Type", contentTypeJSON)
			_, _ = w.Write(body)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { _ = conn.Close() }()
		writeHalf(buf, body)
	})
	return &n, srv.URL
}

// answering is a client of a server that answers every request with body
// as contentType, and the count of requests it got.
func answering(t *testing.T, contentType string, body []byte) (*atomic.Int32, *Client) {
	t.Helper()
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	})
	return &n, newTestClient(t, srv.URL)
}

// retriesBrokenTransfer checks that walk, over a body whose first transfer
// breaks half-way, reads it again and sees all want items (by name).
func retriesBrokenTransfer(t *testing.T, body []byte, want int, walk func(c *Client, seen func(name string)) error) {
	t.Helper()
	n, url := brokenOnce(t, body)
	seen := map[string]int{}
	err := walk(newTestClient(t, url), func(name string) { seen[name]++ })
	if err != nil || n.Load() != 2 || len(seen) != want {
		t.Fatalf("err=%v requests=%d items=%d, want %d", err, n.Load(), len(seen), want)
	}
}

func writeHalf(buf *bufio.ReadWriter, body []byte) {
	_, _ = fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

// A transfer that breaks mid-page is a transport failure, retried like a
// body that could not be read whole before; a body that does not decode
// is not retried.
func TestForEachListedDeviceFailures(t *testing.T) {
	var page bytes.Buffer
	list := DeviceList{APIVersion: APIVersion, Kind: KindDeviceList}
	for i := range 50 {
		list.Items = append(list.Items, testDevice(fmt.Sprintf("d%04d", i)))
	}
	if err := json.NewEncoder(&page).Encode(&list); err != nil {
		t.Fatal(err)
	}

	t.Run("broken transfer retried", func(t *testing.T) {
		retriesBrokenTransfer(t, page.Bytes(), 50, func(c *Client, seen func(string)) error {
			return c.ForEachListedDevice(context.Background(), ListOptions{}, nil, func(d *ListedDevice) error {
				seen(d.Metadata.Name)
				return nil
			})
		})
	})
	t.Run("undecodable body not retried", func(t *testing.T) {
		n, c := answering(t, "text/html", []byte("<html>Please log in</html>"))
		err := c.ForEachListedDevice(context.Background(), ListOptions{}, nil, func(*ListedDevice) error { return nil })
		if err == nil || !errors.Is(err, errDecode) || !strings.Contains(err.Error(), "text/html") ||
			!strings.Contains(err.Error(), "Please log in") || n.Load() != 1 || IsRetryable(err) {
			t.Fatalf("err=%v requests=%d", err, n.Load())
		}
		if s := c.Stats(); s.Failures[OpListDevices] != 1 {
			t.Errorf("a decode failure counts as a failed call: %+v", s)
		}
	})
}

// The full-keeping reader gives every device the lean reader gives and,
// for the selected ones only, JSON that decodes to the device exactly as
// the full decode has it (real v1.2.0 transcripts).
func TestReadDeviceListFullKeepsSelectedDevices(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, f := range files {
		ex := loadTranscript(t, filepath.Base(f))
		if ex.StatusCode != http.StatusOK || !bytes.Contains(ex.ResponseBody, []byte(`"kind": "DeviceList"`)) {
			continue
		}
		var whole DeviceList
		if err := json.Unmarshal(ex.ResponseBody, &whole); err != nil {
			t.Fatal(err)
		}
		lean, leanMeta := listedLean(t, ex.ResponseBody, contentDigest)
		// Every other device is selected, so both paths are taken.
		selected := map[string]bool{}
		for i, d := range whole.Items {
			if i%2 == 0 {
				selected[d.Metadata.Name] = true
			}
		}
		var got []ListedDevice
		meta, err := ReadDeviceListFull(bytes.NewReader(ex.ResponseBody), contentDigest, func(name string) bool { return selected[name] },
			func(d *ListedDevice, raw json.RawMessage) error {
				got = append(got, *d)
				i := len(got) - 1
				var full *Device
				if raw != nil {
					full = &Device{}
					if err := json.Unmarshal(raw, full); err != nil {
						t.Errorf("%s: device %s: its JSON does not decode: %v", filepath.Base(f), d.Metadata.Name, err)
					}
				}
				switch {
				case selected[d.Metadata.Name] && full == nil:
					t.Errorf("%s: selected device %s came without its JSON", filepath.Base(f), d.Metadata.Name)
				case !selected[d.Metadata.Name] && full != nil:
					t.Errorf("%s: device %s came with its JSON without being selected", filepath.Base(f), d.Metadata.Name)
				case full != nil && !reflect.DeepEqual(*full, whole.Items[i]):
					t.Errorf("%s: device %s decoded from its JSON differs from the full decode", filepath.Base(f), d.Metadata.Name)
				case full != nil:
					kept++
				}
				return nil
			})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if !reflect.DeepEqual(got, lean) || !reflect.DeepEqual(meta, leanMeta) {
			t.Errorf("%s: listed devices differ from the lean reader's", filepath.Base(f))
		}
	}
	if kept < 3 {
		t.Fatalf("only %d devices were kept in full", kept)
	}
}

// Events are read like devices: as the page arrives. A page whose
// transfer breaks is read again (fn may see an event twice), a callback's
// stop ends the walk at once, and a body that is not an event list fails
// without a retry.
func TestForEachEventStreams(t *testing.T) {
	var page bytes.Buffer
	list := EventList{APIVersion: APIVersion, Kind: KindEventList}
	for i := range 40 {
		list.Items = append(list.Items, Event{Metadata: ObjectMeta{Name: fmt.Sprintf("e%04d", i)}, Reason: "DeviceConnected",
			InvolvedObject: ObjectReference{Kind: KindDevice, Name: fmt.Sprintf("d%04d", i)}})
	}
	if err := json.NewEncoder(&page).Encode(&list); err != nil {
		t.Fatal(err)
	}
	t.Run("broken transfer retried", func(t *testing.T) {
		retriesBrokenTransfer(t, page.Bytes(), 40, func(c *Client, seen func(string)) error {
			return c.ForEachEvent(context.Background(), ListOptions{}, func(e *Event) error {
				seen(e.InvolvedObject.Name)
				return nil
			})
		})
	})
	t.Run("stop ends the walk", func(t *testing.T) {
		n, c := answering(t, contentTypeJSON, page.Bytes())
		seen := 0
		err := c.ForEachEvent(context.Background(), ListOptions{}, func(*Event) error {
			seen++
			return ErrStopIteration
		})
		if err != nil || seen != 1 || n.Load() != 1 {
			t.Fatalf("err=%v seen=%d requests=%d", err, seen, n.Load())
		}
	})
	t.Run("wrong kind not retried", func(t *testing.T) {
		n, c := answering(t, contentTypeJSON, []byte(`{"apiVersion":"flightctl.io/v1beta1","kind":"DeviceList","metadata":{},"items":[]}`))
		err := c.ForEachEvent(context.Background(), ListOptions{}, func(*Event) error { return nil })
		if err == nil || !errors.Is(err, errDecode) || n.Load() != 1 || IsRetryable(err) {
			t.Fatalf("err=%v requests=%d", err, n.Load())
		}
	})
}

// The JSON handed out for a selected device is that device's bytes
// exactly, however the body arrives: read a byte at a time, indented, and
// with the devices' order mixing selected and skipped ones.
func TestReadDeviceListFullJSONIsTheListedBytes(t *testing.T) {
	list := DeviceList{APIVersion: APIVersion, Kind: KindDeviceList}
	for i := range 30 {
		list.Items = append(list.Items, testDevice(fmt.Sprintf("d%04d", i)))
	}
	body, err := json.MarshalIndent(&list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]json.RawMessage{}
	_, err = ReadDeviceListFull(iotest.OneByteReader(bytes.NewReader(body)), nil, func(name string) bool { return name[len(name)-1]%3 != 0 },
		func(d *ListedDevice, raw json.RawMessage) error {
			if raw != nil {
				got[d.Metadata.Name] = raw
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 18 { // last digits 1, 2, 4, 5, 7 and 8
		t.Fatalf("%d devices came with their JSON, want 18", len(got))
	}
	for _, d := range list.Items {
		raw, ok := got[d.Metadata.Name]
		if !ok {
			continue
		}
		want, err := json.MarshalIndent(&d, "    ", "  ") // items sit two levels deep
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want) {
			t.Fatalf("%s: JSON\n%s\nwant the listed bytes\n%s", d.Metadata.Name, raw, want)
		}
	}
}
