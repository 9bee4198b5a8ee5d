package virtns

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the one nftables table podctl owns. podctl never adds,
// changes or removes anything outside it.
const TableName = "podctl"

// The table's layout:
//
//	table ip podctl {
//	  set bridges { type ifname }                 # every pod bridge
//	  chain ports { }                             # one DNAT rule per published port, tagged "pod:ID"
//	  chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump ports }
//	  chain output      { type nat hook output priority dstnat; fib daddr type local jump ports }
//	  chain postrouting { type nat hook postrouting priority srcnat
//	                      ip saddr SUBNET ip daddr != SUBNET masquerade     # per network, tagged "net:NAME"
//	                      oifname BRIDGE ip saddr 127.0.0.0/8 masquerade }  # loopback to published ports
//	  chain input       { type filter hook input priority filter
//	                      iifname @bridges tcp dport PORT drop }         # per dock, tagged "dock:PORT"
//	  chain forward     { type filter hook forward priority filter
//	                      ct status dnat accept
//	                      iifname BRIDGE oifname @bridges oifname != BRIDGE drop  # per network: none reaches another
//	                      iifname BRIDGE oifname BRIDGE ether daddr BRIDGEMAC drop } # per isolated network: no hairpin routing
//	}
//
// The forward rules name both bridges rather than "any pod bridge to any
// pod bridge" because with br_netfilter loaded, traffic bridged inside one
// named network also passes the forward hook with the bridge as both input
// and output interface, and must pass.
var (
	table    = &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	bridges  = &nftables.Set{Table: table, Name: "bridges", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	portsCh  = &nftables.Chain{Name: "ports", Table: table}
	baseTags = "base"
)

func baseChains() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return []*nftables.Chain{
		{Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		{Name: "output", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		{Name: "postrouting", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept},
		{Name: "forward", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		inputChain(),
	}
}

func inputChain() *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: "input", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept}
}

// DockTag is the tag of the rule that keeps pods off a dock's port.
func DockTag(port uint16) string { return fmt.Sprintf("dock:%d", port) }

// GuardDock drops the TCP connections any pod opens to port on this
// host, a dock's: its peers are hosts, never the pods it keeps, and a pod
// must not get a try at its handshake. It returns the function that
// lifts the guard (cleanup: it runs even when ctx is cancelled). A guard
// that a dead dock left is replaced, not doubled.
func (f Firewall) GuardDock(ctx context.Context, port uint16) (lift func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nftables: guard dock port %d: %w", port, err)
	}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(table)
	if err := c.AddSet(bridges, nil); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	in := c.AddChain(inputChain())
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: guard dock port %d: %w", port, err)
	}
	t := DockTag(port)
	if err := f.deleteTagged(c, t); err != nil {
		return nil, err
	}
	c.AddRule(&nftables.Rule{Table: table, Chain: in, UserData: tag(t), Exprs: dropFromPodsToPort(port)})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: guard dock port %d: %w", port, err)
	}
	return func() error {
		c, err := nftables.New()
		if err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		if err := f.deleteTagged(c, t); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: lift the guard of dock port %d: %w", port, err)
		}
		return nil
	}, nil
}

// dropFromPodsToPort drops TCP packets that come in from any pod bridge
// to port.
func dropFromPodsToPort(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: bridges.Name},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Firewall manages podctl's nftables table in the current network
// namespace. Every rule carries a tag (an nftables comment) naming what it
// belongs to, which is how podctl finds and removes exactly its own rules.
type Firewall struct{}

func tag(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func ruleTag(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// PodTag is the tag of a pod's rules.
func PodTag(podID string) string { return "pod:" + podID }

// NetworkTag is the tag of a network's rules.
func NetworkTag(name string) string { return "net:" + name }

// ensureBase creates the table, its set and chains, and the rules that do
// not depend on any pod or network, if they are missing. Callers hold the
// state lock, so check-then-add does not race with another podctl.
func (Firewall) ensureBase(c *nftables.Conn) error {
	c.AddTable(table)
	if err := c.AddSet(bridges, nil); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddChain(portsCh)
	chains := baseChains()
	for _, ch := range chains {
		c.AddChain(ch)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: create table %s: %w", TableName, err)
	}
	want := map[*nftables.Chain][][]expr.Any{
		chains[0]: {jumpToPortsIfLocal()},
		chains[1]: {jumpToPortsIfLocal()},
		chains[3]: {acceptDNAT()},
	}
	for ch, rules := range want {
		have, err := c.GetRules(table, ch)
		if err != nil {
			return fmt.Errorf("nftables: list %s: %w", ch.Name, err)
		}
		if len(have) > 0 {
			continue
		}
		for _, exprs := range rules {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs, UserData: tag(baseTags)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: base rules: %w", err)
	}
	return nil
}

// AddNetwork makes sure the table exists and holds the network's rules:
// its bridge in the bridges set and masquerading for its subnet.
func (f Firewall) AddNetwork(ctx context.Context, n Network) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables: network %s: %w", n.Name, err)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := f.ensureBase(c); err != nil {
		return err
	}
	rules, err := f.rulesTagged(c, NetworkTag(n.Name))
	if err != nil {
		return err
	}
	if len(rules) > 0 {
		return nil
	}
	if err := c.SetAddElements(bridges, []nftables.SetElement{{Key: ifname(n.Bridge)}}); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	post := baseChains()[2]
	t := tag(NetworkTag(n.Name))
	c.AddRule(&nftables.Rule{Table: table, Chain: post, UserData: t, Exprs: masqueradeSubnet(n.Subnet)})
	c.AddRule(&nftables.Rule{Table: table, Chain: post, UserData: t, Exprs: masqueradeLoopback(n.Bridge)})
	fwd := baseChains()[3]
	c.AddRule(&nftables.Rule{Table: table, Chain: fwd, UserData: t, Exprs: dropToOtherBridges(n.Bridge)})
	if n.Isolated {
		c.AddRule(&nftables.Rule{Table: table, Chain: fwd, UserData: t, Exprs: dropHairpin(n)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: network %s: %w", n.Name, err)
	}
	return nil
}

// RemoveNetwork deletes the network's rules and set element. Like every
// removal here, it is cleanup: it runs even when ctx is cancelled.
func (f Firewall) RemoveNetwork(ctx context.Context, n Network) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := f.deleteTagged(c, NetworkTag(n.Name)); err != nil {
		return err
	}
	if err := c.SetDeleteElements(bridges, []nftables.SetElement{{Key: ifname(n.Bridge)}}); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := c.Flush(); err != nil && !strings.Contains(err.Error(), "no such file") {
		return fmt.Errorf("nftables: remove network %s: %w", n.Name, err)
	}
	return nil
}

// PortForward is one published port: HostPort/Protocol on any of the
// host's addresses goes to PodPort on the pod's IP.
type PortForward struct {
	HostPort, PodPort uint16
	Protocol          string
}

// AddPorts adds one DNAT rule per published port, all in one transaction
// and all tagged with the pod's tag.
func (f Firewall) AddPorts(ctx context.Context, podID string, ip netip.Addr, ports []PortForward) error {
	if len(ports) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables: publish ports of pod %s: %w", podID, err)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, p := range ports {
		c.AddRule(&nftables.Rule{Table: table, Chain: portsCh, UserData: tag(PodTag(podID)), Exprs: dnatPort(p, ip)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: publish ports of pod %s: %w", podID, err)
	}
	return nil
}

// RemovePod deletes every rule tagged with the pod's tag, its network
// lock included.
func (f Firewall) RemovePod(ctx context.Context, podID string) error {
	if err := f.RemovePodRules(ctx, podID); err != nil {
		return err
	}
	return f.UnlockPod(ctx, podID)
}

// RemovePodRules deletes the pod's rules in podctl's table (published
// ports, isolation), leaving its network lock (see UnlockPod).
func (f Firewall) RemovePodRules(ctx context.Context, podID string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return f.deleteTagged(c, PodTag(podID))
}

func (Firewall) rulesTagged(c *nftables.Conn, tagName string) ([]*nftables.Rule, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == TableName
	}
	if !found {
		return nil, nil
	}
	chains := append(baseChains(), portsCh)
	var out []*nftables.Rule
	for _, ch := range chains {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			if strings.Contains(err.Error(), "no such file") {
				continue
			}
			return nil, fmt.Errorf("nftables: list %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if ruleTag(r) == tagName {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (f Firewall) deleteTagged(c *nftables.Conn, tagName string) error {
	rules, err := f.rulesTagged(c, tagName)
	if err != nil || len(rules) == 0 {
		return err
	}
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete rules %s: %w", tagName, err)
	}
	return nil
}

// Expression builders. Registers: 1 holds the value under test.

func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func jumpToPortsIfLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: portsCh.Name},
	}
}

func acceptDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, 1<<5 /* IPS_DST_NAT */), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func matchIfname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

func dropToOtherBridges(bridge string) []expr.Any {
	e := matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge)
	e = append(e,
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: bridges.Name},
	)
	e = append(e, matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge)...)
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

// dropHairpin drops packets a pod sends to the gateway's MAC that the
// host would route back out of the same bridge: one pod reaching another
// through the host despite port isolation. Matching the Ethernet
// destination (the bridge's own MAC) spares frames merely bridged between
// a pod and an uplink port, which br_netfilter also shows to this hook
// with the bridge as both interfaces.
func dropHairpin(n Network) []expr.Any {
	e := matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, n.Bridge)
	e = append(e, matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge)...)
	e = append(e,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.bridgeMAC()},
	)
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

// matchSubnet compares the IPv4 address at offset (12 source, 16
// destination) with the subnet.
func matchSubnet(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := prefixToIPNet(p).Mask
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func masqueradeSubnet(p netip.Prefix) []expr.Any {
	e := matchSubnet(12, p, expr.CmpOpEq)
	e = append(e, matchSubnet(16, p, expr.CmpOpNeq)...)
	return append(e, &expr.Masq{})
}

func masqueradeLoopback(bridge string) []expr.Any {
	e := matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge)
	e = append(e, matchSubnet(12, netip.MustParsePrefix("127.0.0.0/8"), expr.CmpOpEq)...)
	return append(e, &expr.Masq{})
}

func dnatPort(p PortForward, ip netip.Addr) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p.HostPort)},
		&expr.Immediate{Register: 1, Data: ip.AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, p.PodPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
