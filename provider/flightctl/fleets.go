package flightctl

import (
	"context"
	"errors"
	"net/http"
)

// FleetListOptions narrows a fleet list.
type FleetListOptions struct {
	ListOptions
	// AddDevicesSummary asks the server to fill status.devicesSummary,
	// which costs it a count over the fleet's devices.
	AddDevicesSummary bool
}

// ListFleets returns one page of fleets.
func (c *Client) ListFleets(ctx context.Context, opts FleetListOptions) (*FleetList, error) {
	q := opts.query()
	if opts.AddDevicesSummary {
		q.Set("addDevicesSummary", "true")
	}
	var out FleetList
	if _, err := c.call(ctx, request{op: OpListFleets, method: http.MethodGet, path: "/fleets", query: q}, &out, KindFleetList); err != nil {
		return nil, err
	}
	return &out, nil
}

// ForEachFleet calls fn for every fleet matching opts, following
// metadata.continue with a bounded page size (see ForEachDevice).
func (c *Client) ForEachFleet(ctx context.Context, opts FleetListOptions, fn func(*Fleet) error) error {
	return forEachItem(ctx, opts.ListOptions, func(o ListOptions) ([]Fleet, string, error) {
		page, err := c.ListFleets(ctx, FleetListOptions{ListOptions: o, AddDevicesSummary: opts.AddDevicesSummary})
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Metadata.Continue, nil
	}, fn)
}

// GetFleet reads one fleet.
func (c *Client) GetFleet(ctx context.Context, name string) (*Fleet, error) {
	p, err := objectPath("fleets", name)
	if err != nil {
		return nil, c.finish(OpGetFleet, err)
	}
	var out Fleet
	if _, err := c.call(ctx, request{op: OpGetFleet, method: http.MethodGet, path: p}, &out, KindFleet); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateFleet creates a fleet (POST). Its status is not sent.
func (c *Client) CreateFleet(ctx context.Context, f *Fleet) (*Fleet, error) {
	return c.writeFleet(ctx, OpCreateFleet, http.MethodPost, f, false)
}

// ReplaceFleet stores f under f.Metadata.Name (PUT, an upsert;
// conditional when f.Metadata.ResourceVersion is set). Changing the
// template rolls the new spec out to every device the fleet owns.
func (c *Client) ReplaceFleet(ctx context.Context, f *Fleet) (*Fleet, error) {
	return c.writeFleet(ctx, OpReplaceFleet, http.MethodPut, f, true)
}

func (c *Client) writeFleet(ctx context.Context, op, method string, f *Fleet, byName bool) (*Fleet, error) {
	if f == nil {
		return nil, c.finish(op, errors.New("flightctl: nil fleet"))
	}
	p := "/fleets"
	if byName {
		var err error
		if p, err = objectPath("fleets", f.Metadata.Name); err != nil {
			return nil, c.finish(op, err)
		}
	}
	body := *f
	body.Status = nil
	setTypeMeta(&body.APIVersion, &body.Kind, KindFleet)
	raw, err := encode(op, &body)
	if err != nil {
		return nil, c.finish(op, err)
	}
	var out Fleet
	if _, err := c.call(ctx, request{op: op, method: method, path: p, body: raw, contentType: contentTypeJSON}, &out, KindFleet); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteFleet deletes a fleet. Its devices lose their owner and keep their
// current spec.
func (c *Client) DeleteFleet(ctx context.Context, name string) error {
	p, err := objectPath("fleets", name)
	if err != nil {
		return c.finish(OpDeleteFleet, err)
	}
	_, err = c.call(ctx, request{op: OpDeleteFleet, method: http.MethodDelete, path: p}, nil, "")
	return err
}
