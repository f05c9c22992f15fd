package node

import (
	"context"
	"sync"
	"time"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// flightctlClient is what a node needs from Flightctl.
type flightctlClient interface {
	devicewriter.Client
	ListAllDevices(ctx context.Context, opts flightctl.ListOptions) ([]flightctl.Device, error)
}

// poller lists the binding's devices and keeps the latest inventory. It
// owns the inventory, the last listing error and their lock; everything
// else reads the inventory through current.
type poller struct {
	flight  flightctlClient
	binding *vkv1.FleetBinding
	invOpts inventory.Options
	now     func() time.Time
	// claimedElsewhere returns devices older bindings of this manager
	// already use, with the binding's name; this binding leaves them alone.
	claimedElsewhere func() map[string]string
	// kick asks the status loop to poll now (after a write).
	kick chan struct{}

	mu    sync.Mutex
	fleet *inventory.Fleet
	// listedFrom is when the listing behind fleet started: writes that
	// finished before it show in fleet.
	listedFrom time.Time
	err        error
}

func newPoller(flight flightctlClient, b *vkv1.FleetBinding, now func() time.Time, claimedElsewhere func() map[string]string) *poller {
	return &poller{
		flight: flight, binding: b, invOpts: inventory.OptionsFor(b), now: now,
		claimedElsewhere: claimedElsewhere, kick: make(chan struct{}, 1),
	}
}

// poll lists the binding's devices page by page.
func (p *poller) poll(ctx context.Context) error {
	started := time.Now()
	devs, err := p.flight.ListAllDevices(ctx, nodeapi.ListOptions(p.binding))
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		return err
	}
	var claimed map[string]string
	if p.claimedElsewhere != nil {
		claimed = p.claimedElsewhere()
	}
	fleet := inventory.BuildExcluding(devs, p.invOpts, p.now(), claimed)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = nil
	p.fleet = fleet
	p.listedFrom = started
	return nil
}

// current is the latest inventory (empty before the first listing).
func (p *poller) current() *inventory.Fleet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fleet == nil {
		return &inventory.Fleet{}
	}
	return p.fleet
}

// state is the latest inventory (nil before the first listing), when its
// listing started, and the last listing's error.
func (p *poller) state() (*inventory.Fleet, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fleet, p.listedFrom, p.err
}

// pollNow asks the status loop for an early poll.
func (p *poller) pollNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// deviceNames are the devices this node uses (claimed ones excluded).
func (p *poller) deviceNames() []string {
	f := p.current()
	out := make([]string, 0, len(f.Devices))
	for _, d := range f.Devices {
		out = append(out, d.Name)
	}
	return out
}
