package flightctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Page sizes. The server refuses limit > 1000 and treats limit=0 as "no
// limit", which for a large fleet means one huge response; the paging
// helpers therefore always send a limit.
const (
	MaxPageSize     = 1000
	DefaultPageSize = 1000
)

// ListOptions narrows a list call. Selectors use Kubernetes syntax, set
// syntax included ("fleet in (a),!owned").
type ListOptions struct {
	// LabelSelector filters by labels.
	LabelSelector string
	// FieldSelector filters by the fields the server supports for the
	// resource, e.g. "metadata.owner!=Fleet/edge" or
	// "involvedObject.name=dev1".
	FieldSelector string
	// Limit is the page size. Zero sends no limit (the server's default);
	// the server refuses more than MaxPageSize.
	Limit int
	// Continue resumes after the page whose metadata.continue it is.
	Continue string
	// Order is "asc" or "desc" (events only; the server's default is
	// newest first). A poller reading events since a checkpoint asks for
	// "asc" so paging follows time.
	Order string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.FieldSelector != "" {
		q.Set("fieldSelector", o.FieldSelector)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	if o.Order != "" {
		q.Set("order", o.Order)
	}
	return q
}

// pageSize is the limit the paging helpers send: never 0 (unbounded), never
// above what the server accepts.
func (o ListOptions) pageSize() int {
	if o.Limit <= 0 || o.Limit > MaxPageSize {
		return DefaultPageSize
	}
	return o.Limit
}

// ErrStopIteration ends the walk of a ForEach helper early when its
// callback returns it; the helper then returns nil. It saves fetching further pages
// once the caller has what it needs.
var ErrStopIteration = errors.New("flightctl: stop iteration")

// forEachPage drives a paged list: list fetches one page and returns its
// continue token. A server that hands back the token it was given would
// loop forever, so that is an error.
func forEachPage(ctx context.Context, opts ListOptions, list func(ListOptions) (string, error)) error {
	opts.Limit = opts.pageSize()
	for {
		next, err := list(opts)
		if errors.Is(err, ErrStopIteration) {
			return nil
		}
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if next == opts.Continue {
			return errors.New("flightctl: server returned the same continue token twice")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		opts.Continue = next
	}
}

// forEachItem walks every page of a listing (see forEachPage) and calls fn
// for each item; an error from fn stops the walk.
func forEachItem[T any](ctx context.Context, opts ListOptions, list func(ListOptions) (items []T, next string, err error), fn func(*T) error) error {
	return forEachPage(ctx, opts, func(o ListOptions) (string, error) {
		items, next, err := list(o)
		if err != nil {
			return "", err
		}
		for i := range items {
			if err := fn(&items[i]); err != nil {
				return "", err
			}
		}
		return next, nil
	})
}

// ListDevices returns one page of devices, ordered by name. Use
// ForEachDevice or ListAllDevices to walk every page.
func (c *Client) ListDevices(ctx context.Context, opts ListOptions) (*DeviceList, error) {
	var out DeviceList
	_, err := c.call(ctx, request{op: OpListDevices, method: http.MethodGet, path: "/devices", query: opts.query()},
		&out, KindDeviceList)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ForEachDevice calls fn for every device matching opts, fetching pages of
// opts.Limit (DefaultPageSize when 0 or above MaxPageSize) and following
// metadata.continue. An error from fn stops the walk and is returned as is.
// Pages are independent reads, so a device renamed or deleted mid-walk may
// be missed or seen twice.
func (c *Client) ForEachDevice(ctx context.Context, opts ListOptions, fn func(*Device) error) error {
	return forEachItem(ctx, opts, func(o ListOptions) ([]Device, string, error) {
		page, err := c.ListDevices(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Metadata.Continue, nil
	}, fn)
}

// ForEachListedDevice is ForEachDevice for readers that need only what a
// ListedDevice holds (see ReadDeviceList): each page is decoded as it
// arrives and fn sees each device as soon as it is decoded, so memory
// follows one device rather than a page. digest, when not nil, fills
// ListedApplication.Digest. A page whose transfer breaks is read again
// when the client retries, so fn may then see a device twice; an error
// from fn stops the walk and is returned as is.
func (c *Client) ForEachListedDevice(ctx context.Context, opts ListOptions, digest AppDigestFunc, fn func(*ListedDevice) error) error {
	return c.ForEachListedDeviceFull(ctx, opts, digest, nil, func(d *ListedDevice, _ json.RawMessage) error { return fn(d) })
}

// ForEachListedDeviceFull is ForEachListedDevice that also hands fn the
// JSON of the devices full selects by name, as listed
// (ReadDeviceListFull); fn gets nil for the others. A reader that writes
// some devices back (the node's poller and its device writer) reads them
// this way without a GET each. A nil full selects none, at the cost of
// ForEachListedDevice.
func (c *Client) ForEachListedDeviceFull(ctx context.Context, opts ListOptions, digest AppDigestFunc, full func(name string) bool, fn func(*ListedDevice, json.RawMessage) error) error {
	return forEachPage(ctx, opts, func(o ListOptions) (string, error) {
		var fnErr error
		next, err := c.streamDevices(ctx, o, func(body io.Reader) (ListMeta, error) {
			fnErr = nil
			meta, err := ReadDeviceListFull(body, digest, full, func(d *ListedDevice, raw json.RawMessage) error {
				if fnErr = fn(d, raw); fnErr != nil {
					return errStopped
				}
				return nil
			})
			if errors.Is(err, errStopped) {
				// The caller stopped reading; the answer itself was fine.
				err = nil
			}
			return meta, err
		})
		if fnErr != nil {
			return "", fnErr
		}
		return next, err
	})
}

// errStopped ends the decoding of a page whose reader's callback failed.
var errStopped = errors.New("flightctl: callback stopped the listing")

// streamDevices gets one page of devices, handing the body to read as it
// arrives, and returns the continue token read found.
func (c *Client) streamDevices(ctx context.Context, opts ListOptions, read func(io.Reader) (ListMeta, error)) (string, error) {
	var meta ListMeta
	r := request{op: OpListDevices, method: http.MethodGet, path: "/devices", query: opts.query(),
		stream: func(body io.Reader) error {
			var err error
			meta, err = read(body)
			return err
		}}
	if _, err := c.call(ctx, r, nil, KindDeviceList); err != nil {
		return "", err
	}
	return meta.Continue, nil
}

// ListAllDevices collects every device matching opts (see ForEachDevice).
func (c *Client) ListAllDevices(ctx context.Context, opts ListOptions) ([]Device, error) {
	var all []Device
	err := c.ForEachDevice(ctx, opts, func(d *Device) error {
		all = append(all, *d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// GetDevice reads one device, spec and status included.
func (c *Client) GetDevice(ctx context.Context, name string) (*Device, error) {
	return c.getDevice(ctx, OpGetDevice, name)
}

// GetDeviceStatus reads /devices/{name}/status. The server answers with the
// whole device; its Status is the part of interest.
func (c *Client) GetDeviceStatus(ctx context.Context, name string) (*Device, error) {
	return c.getDevice(ctx, OpGetDeviceStatus, name, "status")
}

func (c *Client) getDevice(ctx context.Context, op, name string, sub ...string) (*Device, error) {
	p, err := objectPath("devices", name, sub...)
	if err != nil {
		return nil, c.finish(op, err)
	}
	var out Device
	if _, err := c.call(ctx, request{op: op, method: http.MethodGet, path: p}, &out, KindDevice); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateDevice creates a device (POST). A taken name fails with a conflict
// (IsAlreadyExists). d.Status is not sent: the server ignores a status in a
// create, except that it refuses an incomplete one.
func (c *Client) CreateDevice(ctx context.Context, d *Device) (*Device, error) {
	return c.writeDevice(ctx, OpCreateDevice, http.MethodPost, d, false)
}

// ReplaceDevice stores d under d.Metadata.Name (PUT). It creates the device
// when the name is new. With d.Metadata.ResourceVersion set the write is
// conditional and fails with IsStale when the device changed since it was
// read; without it, it overwrites. A spec change on a fleet-owned device
// fails with IsOwnedByFleet. Owner, annotations, generation and status in d
// are ignored by the server; Status is not sent at all.
func (c *Client) ReplaceDevice(ctx context.Context, d *Device) (*Device, error) {
	return c.writeDevice(ctx, OpReplaceDevice, http.MethodPut, d, true)
}

// ReplaceDeviceStatus stores d.Status as the device's full status (PUT
// /devices/{name}/status). The server checks it against the schema, so it
// must be complete (applicationsSummary and conditions included).
func (c *Client) ReplaceDeviceStatus(ctx context.Context, d *Device) (*Device, error) {
	const op = OpReplaceDeviceStatus
	if d == nil {
		return nil, c.finish(op, errors.New("flightctl: nil device"))
	}
	p, err := objectPath("devices", d.Metadata.Name, "status")
	if err != nil {
		return nil, c.finish(op, err)
	}
	body := *d
	setTypeMeta(&body.APIVersion, &body.Kind, KindDevice)
	return c.sendDevice(ctx, op, http.MethodPut, p, &body)
}

func (c *Client) writeDevice(ctx context.Context, op, method string, d *Device, byName bool) (*Device, error) {
	if d == nil {
		return nil, c.finish(op, errors.New("flightctl: nil device"))
	}
	p := "/devices"
	if byName {
		var err error
		if p, err = objectPath("devices", d.Metadata.Name); err != nil {
			return nil, c.finish(op, err)
		}
	}
	body := *d
	body.Status = nil
	if body.Spec == nil {
		// The real client always sends a spec; {} means "no workload".
		body.Spec = &DeviceSpec{}
	}
	setTypeMeta(&body.APIVersion, &body.Kind, KindDevice)
	return c.sendDevice(ctx, op, method, p, &body)
}

func (c *Client) sendDevice(ctx context.Context, op, method, path string, body *Device) (*Device, error) {
	raw, err := encode(op, body)
	if err != nil {
		return nil, c.finish(op, err)
	}
	var out Device
	_, err = c.call(ctx, request{op: op, method: method, path: path, body: raw, contentType: contentTypeJSON}, &out, KindDevice)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchDevice applies an RFC 6902 JSON patch to the device's metadata.labels
// and spec. Guard it with a "test" of /metadata/resourceVersion to make it
// conditional; the server reports a failed test as 400, which IsStale
// recognises. A guarded patch is retried like a PUT; an unguarded one is
// not retried once sent, as a patch is not idempotent.
func (c *Client) PatchDevice(ctx context.Context, name string, ops []PatchOperation) (*Device, error) {
	var out Device
	if err := c.patchDevice(ctx, OpPatchDevice, name, ops, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchDeviceMetadata is PatchDevice for a caller that needs only the
// patched device's metadata (its new resourceVersion and annotations): the
// spec and status the server answers with, applications' inline content
// included, are stepped over rather than decoded. The device writer makes
// one such write per pod, with many in flight at once in a burst.
func (c *Client) PatchDeviceMetadata(ctx context.Context, name string, ops []PatchOperation) (*ObjectMeta, error) {
	var out deviceHeader
	if err := c.patchDevice(ctx, OpPatchDevice, name, ops, &out); err != nil {
		return nil, err
	}
	return &out.Metadata, nil
}

// deviceHeader is the part of a device PatchDeviceMetadata decodes.
type deviceHeader struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
}

// PatchDeviceStatus applies a JSON patch to /devices/{name}/status; paths
// start with /status.
func (c *Client) PatchDeviceStatus(ctx context.Context, name string, ops []PatchOperation) (*Device, error) {
	var out Device
	if err := c.patchDevice(ctx, OpPatchDeviceStatus, name, ops, &out, "status"); err != nil {
		return nil, err
	}
	return &out, nil
}

// patchDevice sends a JSON patch to the device (or its sub-resource) and
// decodes the answer into out.
func (c *Client) patchDevice(ctx context.Context, op, name string, ops []PatchOperation, out typed, sub ...string) error {
	p, err := objectPath("devices", name, sub...)
	if err != nil {
		return c.finish(op, err)
	}
	if ops == nil {
		ops = []PatchOperation{}
	}
	raw, err := encode(op, ops)
	if err != nil {
		return c.finish(op, err)
	}
	_, err = c.call(ctx, request{op: op, method: http.MethodPatch, path: p, body: raw, contentType: contentTypeJSONPatch,
		repeatable: guarded(ops)}, out, KindDevice)
	return err
}

// DeleteDevice deletes a device. A device that is already gone gives an
// error for which IsNotFound is true; that includes the case where a retry
// follows a delete whose answer was lost.
func (c *Client) DeleteDevice(ctx context.Context, name string) error {
	p, err := objectPath("devices", name)
	if err != nil {
		return c.finish(OpDeleteDevice, err)
	}
	_, err = c.call(ctx, request{op: OpDeleteDevice, method: http.MethodDelete, path: p}, nil, "")
	return err
}

// GetLastSeen returns when the device's agent last reported. It returns
// (nil, nil) when the agent never reported (the server answers 204), and an
// error for which IsNotFound is true when there is no such device.
func (c *Client) GetLastSeen(ctx context.Context, name string) (*time.Time, error) {
	const op = OpGetLastSeen
	p, err := objectPath("devices", name, "lastseen")
	if err != nil {
		return nil, c.finish(op, err)
	}
	resp, err := c.doRetry(ctx, request{op: op, method: http.MethodGet, path: p})
	if err == nil && resp.code == http.StatusNoContent {
		return nil, c.finish(op, nil)
	}
	var ls LastSeen
	if err == nil {
		err = c.decode(request{op: op, method: http.MethodGet, path: p}, resp, &ls, "")
	}
	if err == nil && ls.LastSeen.IsZero() {
		err = fmt.Errorf("flightctl %s: %w: no lastSeen in body", op, errDecode)
	}
	if err = c.finish(op, err); err != nil {
		return nil, err
	}
	t := ls.LastSeen
	return &t, nil
}

// setTypeMeta fills apiVersion and kind when the caller left them empty.
func setTypeMeta(apiVersion, kind *string, want string) {
	if *apiVersion == "" {
		*apiVersion = APIVersion
	}
	if *kind == "" {
		*kind = want
	}
}

// guarded says a patch tests the object's resourceVersion. A JSON patch
// applies all or nothing, and a successful write moves the version, so
// sending a guarded patch again cannot apply it twice: the repeat fails
// its test (400) instead.
func guarded(ops []PatchOperation) bool {
	return slices.ContainsFunc(ops, func(o PatchOperation) bool {
		return o.Op == "test" && o.Path == "/metadata/resourceVersion"
	})
}
