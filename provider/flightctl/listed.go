package flightctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ListedDevice is a device as a poller takes it from a listing: metadata
// and status in full, and of the spec only what an inventory needs. The
// applications' inline files, images and environments, which are most of
// a listing's bytes, are skipped while decoding (ReadDeviceList), so
// memory follows one device, not the listing. Writers must read a full
// Device instead: a ListedDevice cannot be written back.
type ListedDevice struct {
	Metadata ObjectMeta
	// Spec is nil when the device has none.
	Spec   *ListedSpec
	Status *DeviceStatus
}

// ListedSpec is what a listing keeps of a device spec.
type ListedSpec struct {
	// Applications are spec.applications in order.
	Applications []ListedApplication
	// Decommissioning says spec.decommissioning is present: Flightctl was
	// asked to decommission the device.
	Decommissioning bool
}

// ListedApplication is one spec application of a listed device.
type ListedApplication struct {
	Name string
	// Digest is what the listing's AppDigestFunc made of the application;
	// "" when the listing had none.
	Digest string
}

// AppDigestFunc fingerprints a spec application for ListedApplication.Digest.
// A listing given one decodes each application in full, one device at a
// time, to call it; without one, only names are decoded.
type AppDigestFunc func(ApplicationSpec) string

// Listed is d reduced to what a listing keeps, with digests made by digest
// (none when nil). A ListedDevice read from the same JSON by
// ReadDeviceList is equal to it.
func (d *Device) Listed(digest AppDigestFunc) ListedDevice {
	out := ListedDevice{Metadata: d.Metadata, Status: d.Status}
	if d.Spec == nil {
		return out
	}
	out.Spec = &ListedSpec{}
	_, out.Spec.Decommissioning = d.Spec.Extra[SpecDecommissioning]
	for _, a := range d.Spec.Applications {
		out.Spec.Applications = append(out.Spec.Applications, listedApp(a, digest))
	}
	return out
}

func listedApp(a ApplicationSpec, digest AppDigestFunc) ListedApplication {
	l := ListedApplication{Name: a.Name}
	if digest != nil {
		l.Digest = digest(a)
	}
	return l
}

// ReadDeviceList decodes a DeviceList body (GET /devices) as it is read
// from r and calls fn for each device, so that neither the body nor the
// page is ever held whole. It returns the list's metadata (the continue
// token). kind and apiVersion are checked as the client checks them;
// since the server writes them after the items, a body from something
// that is not Flightctl may reach fn before it is refused. An error from
// fn stops the reading and is returned as is.
func ReadDeviceList(r io.Reader, digest AppDigestFunc, fn func(*ListedDevice) error) (ListMeta, error) {
	return ReadDeviceListFull(r, digest, nil, func(d *ListedDevice, _ json.RawMessage) error { return fn(d) })
}

// ReadDeviceListFull is ReadDeviceList that also hands fn the JSON of the
// devices full selects by name, as listed (nil for the others), for a
// reader that may write them back and decodes them only then. Every device
// is decoded once, straight from the stream; the JSON of a selected one is
// copied from what the decoder read (see teeReader), not scanned again, and
// is held only while fn keeps it. A nil full selects none.
func ReadDeviceListFull(r io.Reader, digest AppDigestFunc, full func(name string) bool, fn func(*ListedDevice, json.RawMessage) error) (ListMeta, error) {
	if full == nil {
		return readList(r, KindDeviceList, func(dec *json.Decoder) error {
			d, err := decodeListed(dec, digest)
			if err != nil {
				return err
			}
			return fn(d, nil)
		})
	}
	rec := &teeReader{r: r}
	return readList(rec, KindDeviceList, func(dec *json.Decoder) error {
		from := dec.InputOffset()
		d, err := decodeListed(dec, digest)
		if err != nil {
			return err
		}
		to := dec.InputOffset()
		var raw json.RawMessage
		if full(d.Metadata.Name) {
			raw = rec.value(from, to)
		}
		rec.forget(to)
		return fn(d, raw)
	})
}

// teeReader keeps what a json.Decoder read from r and has not yet been
// forgotten, so the JSON of one value can be copied out by the decoder's
// input offsets after it was decoded. Decoding a hot device from the
// stream and copying its bytes costs one scan; reading it as a RawMessage
// and then decoding that copy cost four (the decoder's and Unmarshal's,
// twice each), which was most of the manager's CPU in a burst.
type teeReader struct {
	r io.Reader
	// buf holds the input from stream offset base on.
	buf  []byte
	base int64
}

func (c *teeReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	return n, err
}

// value copies the input between two decoder offsets: one value, after
// the separator and white space the decoder skipped before it.
func (c *teeReader) value(from, to int64) json.RawMessage {
	if from < c.base || to < from || to-c.base > int64(len(c.buf)) {
		return nil
	}
	v := bytes.TrimLeft(c.buf[from-c.base:to-c.base], ", \t\r\n")
	return append(json.RawMessage(nil), v...)
}

// forget drops the input before stream offset off, keeping the buffer's
// memory for what the decoder reads next.
func (c *teeReader) forget(off int64) {
	if off <= c.base {
		return
	}
	n := min(off-c.base, int64(len(c.buf)))
	c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	c.base += n
}

// listedWire is one listed device on the wire; A is what an application
// decodes into.
type listedWire[A any] struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     *struct {
		Applications    []A      `json:"applications"`
		Decommissioning presence `json:"decommissioning"`
	} `json:"spec"`
	Status *DeviceStatus `json:"status"`
}

// appName is an application decoded for its name only: encoding/json
// steps over the other members without keeping them.
type appName struct {
	Name string `json:"name"`
}

// presence records that a member was there, whatever its value (null
// included, as a member of DeviceSpec.Extra would be), without copying it.
type presence bool

// UnmarshalJSON is called for any value, null included.
func (p *presence) UnmarshalJSON([]byte) error {
	*p = true
	return nil
}

// skipped is a member read and dropped without a copy.
type skipped struct{}

// UnmarshalJSON ignores the value; the decoder has already checked it.
func (*skipped) UnmarshalJSON([]byte) error { return nil }

// decodeListed reads the next device: names only without digest, each
// application in full (and dropped once digested) with one.
func decodeListed(dec *json.Decoder, digest AppDigestFunc) (*ListedDevice, error) {
	if digest == nil {
		return decodeListedAs(dec, func(a appName) ListedApplication { return ListedApplication{Name: a.Name} })
	}
	return decodeListedAs(dec, func(a ApplicationSpec) ListedApplication { return listedApp(a, digest) })
}

func decodeListedAs[A any](dec *json.Decoder, app func(A) ListedApplication) (*ListedDevice, error) {
	var w listedWire[A]
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode device: %w", err)
	}
	return w.listed(app), nil
}

// listed is the wire device in the form listings hand out.
func (w *listedWire[A]) listed(app func(A) ListedApplication) *ListedDevice {
	d := &ListedDevice{Metadata: w.Metadata, Status: w.Status}
	if w.Spec != nil {
		d.Spec = &ListedSpec{Decommissioning: bool(w.Spec.Decommissioning)}
		for _, a := range w.Spec.Applications {
			d.Spec.Applications = append(d.Spec.Applications, app(a))
		}
	}
	return d
}

// errEmptyBody is a 2xx answer without a body where a list was expected.
var errEmptyBody = errors.New("empty body")

// readList walks a list object member by member, handing each element of
// items to item as the decoder reaches it and decoding metadata, kind
// and apiVersion; other members (summary) are skipped.
func readList(r io.Reader, wantKind string, item func(*json.Decoder) error) (ListMeta, error) {
	dec := json.NewDecoder(r)
	var (
		meta            ListMeta
		apiVersion, knd string
	)
	if err := expectDelim(dec, '{'); err != nil {
		return meta, err
	}
	if err := readMembers(dec, &meta, &apiVersion, &knd, item); err != nil {
		if errors.Is(err, io.EOF) {
			// The body ended inside the object.
			err = io.ErrUnexpectedEOF
		}
		return meta, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return meta, errors.New("data after the list object")
	}
	return meta, checkTypeMeta(apiVersion, knd, wantKind)
}

// readMembers reads a list object's members up to its closing brace.
func readMembers(dec *json.Decoder, meta *ListMeta, apiVersion, kind *string, item func(*json.Decoder) error) error {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch key, _ := tok.(string); key {
		case "items":
			err = readItems(dec, item)
		case "metadata":
			err = dec.Decode(meta)
		case "apiVersion":
			err = dec.Decode(apiVersion)
		case "kind":
			err = dec.Decode(kind)
		default:
			err = dec.Decode(&skipped{})
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing brace
	return err
}

// readItems hands each element of an items array (or none for null) to
// item.
func readItems(dec *json.Decoder, item func(*json.Decoder) error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("items is %v, not an array", tok)
	}
	for dec.More() {
		if err := item(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing bracket
	return err
}

// expectDelim reads the opening delimiter of a value; an empty input is
// errEmptyBody.
func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case err != nil:
		return err
	case tok != want:
		return fmt.Errorf("body is %v, not an object", tok)
	}
	return nil
}

// checkTypeMeta accepts missing apiVersion and kind (simulators and older
// servers omit them) but not wrong ones: they mean the URL points at
// something that is not the Flightctl API.
func checkTypeMeta(apiVersion, kind, wantKind string) error {
	if kind != "" && kind != wantKind {
		return fmt.Errorf("kind %q, want %q", kind, wantKind)
	}
	if apiVersion != "" && !strings.HasPrefix(apiVersion, "flightctl.io/") {
		return fmt.Errorf("apiVersion %q is not a Flightctl API version", apiVersion)
	}
	return nil
}
