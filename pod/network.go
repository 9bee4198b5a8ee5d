package pod

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/virtns"
)

// Network defaults.
const (
	DefaultNetwork = "default"
	DefaultBridge  = "podbr0"
	DefaultSubnet  = "10.88.0.0/16"
	// namedPool is carved into /24s for named networks, one each.
	namedPool = "10.89.0.0/16"
)

func (s Store) networkPath(name string) string {
	return filepath.Join(s.Root, "networks", name+".json")
}

func (s Store) loadNetwork(name string) (virtns.Network, bool, error) {
	var n virtns.Network
	err := statedir.ReadJSON(s.networkPath(name), &n)
	if errors.Is(err, os.ErrNotExist) {
		return virtns.Network{}, false, nil
	}
	if err != nil {
		return virtns.Network{}, false, fmt.Errorf("network %s: %w", name, err)
	}
	return n, true, nil
}

func (s Store) saveNetwork(n virtns.Network) error {
	if err := os.MkdirAll(filepath.Dir(s.networkPath(n.Name)), 0o700); err != nil {
		return err
	}
	return statedir.WriteJSON(s.networkPath(n.Name), n, 0o600)
}

func (s Store) networks() ([]virtns.Network, error) {
	matches, err := filepath.Glob(filepath.Join(s.Root, "networks", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []virtns.Network
	for _, p := range matches {
		name := filepath.Base(p[:len(p)-len(".json")])
		n, ok, err := s.loadNetwork(name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// ensureNetworkLocked returns the network a pod joins, creating it (its
// record, bridge and nftables rules) on first use. The default network is
// isolated and configured by bridge and subnet ("" for the defaults); a
// named network gets the next free /24 of namedPool and is not isolated.
// The caller holds the state lock.
func (m *Manager) ensureNetworkLocked(ctx context.Context, name string) (virtns.Network, error) {
	if name == "" {
		name = DefaultNetwork
	}
	n, ok, err := m.store.loadNetwork(name)
	if err != nil {
		return n, err
	}
	if ok && name == DefaultNetwork {
		if (m.opts.Bridge != "" && m.opts.Bridge != n.Bridge) || (m.opts.Subnet != "" && m.opts.Subnet != n.Subnet.String()) || (m.opts.Uplink != "" && m.opts.Uplink != n.Uplink) {
			return n, errdefs.New(errdefs.Conflict, "the default network already exists with bridge %s, subnet %s and uplink %q; remove every pod to change it", n.Bridge, n.Subnet, n.Uplink)
		}
	}
	if !ok {
		if n, err = m.newNetwork(name); err != nil {
			return n, err
		}
	}
	if err := n.EnsureBridge(ctx); err != nil {
		return n, err
	}
	if err := (virtns.Firewall{}).AddNetwork(ctx, n); err != nil {
		return n, err
	}
	if !ok {
		if err := m.store.saveNetwork(n); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (m *Manager) newNetwork(name string) (virtns.Network, error) {
	if name == DefaultNetwork {
		bridge, subnet := m.opts.Bridge, m.opts.Subnet
		if bridge == "" {
			bridge = DefaultBridge
		}
		if subnet == "" {
			subnet = DefaultSubnet
		}
		n, err := virtns.NewNetwork(name, bridge, subnet, true)
		n.Uplink = m.opts.Uplink
		return n, err
	}
	existing, err := m.store.networks()
	if err != nil {
		return virtns.Network{}, err
	}
	used := map[string]bool{}
	for _, n := range existing {
		used[n.Bridge] = true
		used[n.Subnet.String()] = true
	}
	pool := netip.MustParsePrefix(namedPool).Addr().As4()
	for i := 1; i < 255; i++ {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{pool[0], pool[1], byte(i), 0}), 24)
		bridge := fmt.Sprintf("podbr%d", i)
		if used[bridge] || used[subnet.String()] {
			continue
		}
		return virtns.NewNetwork(name, bridge, subnet.String(), false)
	}
	return virtns.Network{}, errdefs.New(errdefs.Conflict, "no free subnet in %s for network %s", namedPool, name)
}

// releaseNetworkLocked deletes a named network once no pod uses it. The
// default network stays, like podman's. The caller holds the state lock.
func (m *Manager) releaseNetworkLocked(ctx context.Context, n virtns.Network) error {
	if n.Name == "" || n.Name == DefaultNetwork {
		return nil
	}
	held, err := m.store.ipLeases(n.Name).All()
	if err != nil || len(held) > 0 {
		return err
	}
	if err := (virtns.Firewall{}).RemoveNetwork(ctx, n); err != nil {
		return err
	}
	if err := n.DeleteBridge(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(m.store.ipLeases(n.Name).Dir); err != nil {
		return err
	}
	if err := os.Remove(m.store.networkPath(n.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
