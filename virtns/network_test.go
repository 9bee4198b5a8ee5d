package virtns

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

func TestNewNetwork(t *testing.T) {
	tests := []struct {
		subnet      string
		wantSubnet  string
		wantGateway string
	}{
		{"10.88.0.0/16", "10.88.0.0/16", "10.88.0.1"},
		{"10.88.5.7/16", "10.88.0.0/16", "10.88.0.1"}, // host bits masked
		{"10.88.5.255/24", "10.88.5.0/24", "10.88.5.1"},
		{"192.168.1.77/30", "192.168.1.76/30", "192.168.1.77"},
		{"10.1.2.3/8", "10.0.0.0/8", "10.0.0.1"},
		{"172.16.4.9/29", "172.16.4.8/29", "172.16.4.9"},
	}
	for _, tt := range tests {
		n, err := NewNetwork("net", "podbr0", tt.subnet, true)
		if err != nil {
			t.Errorf("NewNetwork(%q): %v", tt.subnet, err)
			continue
		}
		if got := n.Subnet.String(); got != tt.wantSubnet {
			t.Errorf("NewNetwork(%q).Subnet = %s, want %s", tt.subnet, got, tt.wantSubnet)
		}
		if got := n.Gateway.String(); got != tt.wantGateway {
			t.Errorf("NewNetwork(%q).Gateway = %s, want %s", tt.subnet, got, tt.wantGateway)
		}
		if n.Name != "net" || n.Bridge != "podbr0" || !n.Isolated {
			t.Errorf("NewNetwork(%q) = %+v: name, bridge or isolation not kept", tt.subnet, n)
		}
	}
	n, err := NewNetwork("named", "podbr7", "10.89.7.0/24", false)
	if err != nil || n.Isolated {
		t.Errorf("NewNetwork(isolated=false) = %+v, %v", n, err)
	}
	if p := n.Prefix(netip.MustParseAddr("10.89.7.42")); p.String() != "10.89.7.42/24" {
		t.Errorf("Prefix = %s, want 10.89.7.42/24", p)
	}
}

func TestNewNetworkBadSubnet(t *testing.T) {
	for _, subnet := range []string{
		"",
		"garbage",
		"10.88.0.0",
		"10.88.0.0/",
		"10.88.0.0/33",
		"10.88.0.0/31", // no room for gateway and a pod
		"10.88.0.1/32",
		"10.0.0.0/7",
		"0.0.0.0/0",
		"10.88.0.256/16",
		"10.88.0/16",
		" 10.88.0.0/16",
		"10.88.0.0/16 ",
		"fd00::/64",
		"fd00:88::/120",
		"::ffff:10.88.0.0/112", // IPv4-mapped IPv6 is still IPv6
	} {
		n, err := NewNetwork("net", "podbr0", subnet, true)
		if err == nil {
			t.Errorf("NewNetwork(subnet %q) = %+v, want an error", subnet, n)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidArgument {
			t.Errorf("NewNetwork(subnet %q): kind %d, want InvalidArgument: %v", subnet, k, err)
		}
	}
}

func TestNewNetworkBridgeName(t *testing.T) {
	for _, bridge := range []string{"b", "podbr0", "podbr254", strings.Repeat("x", 15), "br-0", "br_0", "br.0"} {
		if _, err := NewNetwork("net", bridge, "10.88.0.0/16", true); err != nil {
			t.Errorf("NewNetwork(bridge %q): %v", bridge, err)
		}
	}
	for _, bridge := range []string{
		"",
		strings.Repeat("x", 16), // IFNAMSIZ-1 is the limit
		strings.Repeat("x", 64),
		"br/0",
		"br 0",
		"br:0",
	} {
		n, err := NewNetwork("net", bridge, "10.88.0.0/16", true)
		if err == nil {
			t.Errorf("NewNetwork(bridge %q) = %+v, want an error", bridge, n)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidArgument {
			t.Errorf("NewNetwork(bridge %q): kind %d, want InvalidArgument: %v", bridge, k, err)
		}
	}
}

// TestNewNetworkBridgeNameKernelRules checks the names the kernel's
// dev_valid_name refuses besides those above: "." and "..", and any
// white space, not only ' '. NewNetwork accepting them only defers the
// failure to EnsureBridge, as an unclassified netlink error.
func TestNewNetworkBridgeNameKernelRules(t *testing.T) {
	for _, bridge := range []string{".", "..", "br\t0", "br\n0", "br\v0"} {
		n, err := NewNetwork("net", bridge, "10.88.0.0/16", true)
		if err == nil {
			t.Errorf("NewNetwork(bridge %q) = %+v, want an InvalidArgument error (the kernel refuses this interface name)", bridge, n)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidArgument {
			t.Errorf("NewNetwork(bridge %q): kind %d, want InvalidArgument: %v", bridge, k, err)
		}
	}
}

func TestNewEndpoint(t *testing.T) {
	tests := []struct {
		ip, host, pod, mac string
	}{
		{"10.88.0.2", "pv0a580002", "pp0a580002", "02:50:0a:58:00:02"},
		{"10.88.1.255", "pv0a5801ff", "pp0a5801ff", "02:50:0a:58:01:ff"},
		{"192.168.100.17", "pvc0a86411", "ppc0a86411", "02:50:c0:a8:64:11"},
		{"255.255.255.254", "pvfffffffe", "ppfffffffe", "02:50:ff:ff:ff:fe"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		ep := NewEndpoint(ip)
		if ep.IP != ip || ep.HostVeth != tt.host || ep.PodVeth != tt.pod || ep.MAC != tt.mac {
			t.Errorf("NewEndpoint(%s) = %+v, want host %s pod %s mac %s", tt.ip, ep, tt.host, tt.pod, tt.mac)
		}
		if len(ep.HostVeth) > 15 || len(ep.PodVeth) > 15 {
			t.Errorf("NewEndpoint(%s): interface names %q %q longer than IFNAMSIZ-1", tt.ip, ep.HostVeth, ep.PodVeth)
		}
		if again := NewEndpoint(netip.MustParseAddr(tt.ip)); again != ep {
			t.Errorf("NewEndpoint(%s) not stable: %+v then %+v", tt.ip, ep, again)
		}
		for _, name := range []string{ep.HostVeth, ep.PodVeth, ep.MAC} {
			if seen[name] {
				t.Errorf("NewEndpoint(%s): %s collides with another endpoint", tt.ip, name)
			}
			seen[name] = true
		}
	}
}

// allocator is a network and its lease directory for AllocateIP tests.
type allocator struct {
	t      *testing.T
	n      Network
	leases statedir.Leases
	stale  func(string) bool
}

func newAllocator(t *testing.T, subnet string) *allocator {
	t.Helper()
	n, err := NewNetwork("test", "podbrtest", subnet, true)
	if err != nil {
		t.Fatal(err)
	}
	// A lease directory that does not exist yet, as on a fresh host.
	return &allocator{t: t, n: n, leases: statedir.Leases{Dir: filepath.Join(t.TempDir(), "leases", "ip-test")}}
}

func (a *allocator) alloc(owner string) netip.Addr {
	a.t.Helper()
	ip, err := a.n.AllocateIP(a.t.Context(), a.leases, owner, a.stale)
	if err != nil {
		a.t.Fatalf("AllocateIP(%s): %v", owner, err)
	}
	if o, err := a.leases.Owner(ip.String()); err != nil || o != owner {
		a.t.Fatalf("AllocateIP(%s) = %s but its lease names %q (%v)", owner, ip, o, err)
	}
	return ip
}

func (a *allocator) release(ip netip.Addr, owner string) {
	a.t.Helper()
	if err := a.leases.Release(ip.String(), owner); err != nil {
		a.t.Fatal(err)
	}
}

func (a *allocator) wantExhausted() {
	a.t.Helper()
	ip, err := a.n.AllocateIP(a.t.Context(), a.leases, "one-too-many", a.stale)
	if err == nil {
		a.t.Fatalf("AllocateIP on a full network = %s, want an error", ip)
	}
	if k := errdefs.KindOf(err); k != errdefs.Conflict {
		a.t.Fatalf("AllocateIP on a full network: kind %d, want Conflict: %v", k, err)
	}
	if o, _ := a.leases.Held("one-too-many"); len(o) != 0 {
		a.t.Fatalf("a failed AllocateIP left leases %q", o)
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestAllocateIPDistinctAndInRange(t *testing.T) {
	// A /28: network .0, gateway .1, broadcast .15, hosts .2-.14.
	a := newAllocator(t, "10.77.3.0/28")
	var got []netip.Addr
	for i := 0; i < 13; i++ {
		ip := a.alloc("pod" + string(rune('a'+i)))
		if ip == a.n.Gateway {
			t.Fatalf("allocated the gateway %s", ip)
		}
		if ip == a.n.Subnet.Addr() {
			t.Fatalf("allocated the network address %s", ip)
		}
		if ip == netip.MustParseAddr("10.77.3.15") {
			t.Fatalf("allocated the broadcast address %s", ip)
		}
		if !a.n.Subnet.Contains(ip) {
			t.Fatalf("allocated %s outside %s", ip, a.n.Subnet)
		}
		if slices.Contains(got, ip) {
			t.Fatalf("allocated %s twice", ip)
		}
		got = append(got, ip)
	}
	want := addrs("10.77.3.2", "10.77.3.3", "10.77.3.4", "10.77.3.5", "10.77.3.6", "10.77.3.7", "10.77.3.8",
		"10.77.3.9", "10.77.3.10", "10.77.3.11", "10.77.3.12", "10.77.3.13", "10.77.3.14")
	if !slices.Equal(got, want) {
		t.Fatalf("allocation order %v, want %v", got, want)
	}
	a.wantExhausted()
	all, err := a.leases.All()
	if err != nil || len(all) != 13 {
		t.Fatalf("All = %v (%v), want 13 leases", all, err)
	}
}

func TestAllocateIPSlash30(t *testing.T) {
	a := newAllocator(t, "10.77.4.0/30")
	if ip := a.alloc("only"); ip != netip.MustParseAddr("10.77.4.2") {
		t.Fatalf("the one host of a /30 = %s, want 10.77.4.2", ip)
	}
	a.wantExhausted()
	a.release(netip.MustParseAddr("10.77.4.2"), "only")
	if ip := a.alloc("next"); ip != netip.MustParseAddr("10.77.4.2") {
		t.Fatalf("after release = %s, want 10.77.4.2", ip)
	}
}

func TestAllocateIPExhaustionSlash29(t *testing.T) {
	a := newAllocator(t, "10.77.5.0/29")
	for i := 0; i < 5; i++ {
		a.alloc(string(rune('a' + i)))
	}
	a.wantExhausted()
	// Still exhausted on a second try, and the existing leases are intact.
	a.wantExhausted()
	all, _ := a.leases.All()
	if len(all) != 5 {
		t.Fatalf("leases after exhaustion: %v", all)
	}
}

func TestAllocateIPRoundRobin(t *testing.T) {
	a := newAllocator(t, "10.77.6.0/29") // hosts .2-.6
	ip2, ip3, ip4 := a.alloc("a"), a.alloc("b"), a.alloc("c")
	if !slices.Equal([]netip.Addr{ip2, ip3, ip4}, addrs("10.77.6.2", "10.77.6.3", "10.77.6.4")) {
		t.Fatalf("first three = %v %v %v", ip2, ip3, ip4)
	}
	a.release(ip2, "a")
	a.release(ip3, "b")
	// The freed .2 and .3 are not reused while .5 and .6 were never used.
	if ip := a.alloc("d"); ip != netip.MustParseAddr("10.77.6.5") {
		t.Fatalf("after releasing .2/.3 got %s, want 10.77.6.5", ip)
	}
	if ip := a.alloc("e"); ip != netip.MustParseAddr("10.77.6.6") {
		t.Fatalf("got %s, want 10.77.6.6", ip)
	}
	// Then it wraps around to the oldest freed addresses.
	if ip := a.alloc("f"); ip != netip.MustParseAddr("10.77.6.2") {
		t.Fatalf("after wrapping got %s, want 10.77.6.2", ip)
	}
	a.release(netip.MustParseAddr("10.77.6.4"), "c")
	// .3 is next in order, even though .4 was freed more recently.
	if ip := a.alloc("g"); ip != netip.MustParseAddr("10.77.6.3") {
		t.Fatalf("got %s, want 10.77.6.3", ip)
	}
	if ip := a.alloc("h"); ip != netip.MustParseAddr("10.77.6.4") {
		t.Fatalf("got %s, want 10.77.6.4", ip)
	}
	a.wantExhausted()
}

func TestAllocateIPSkipsHeldAddresses(t *testing.T) {
	a := newAllocator(t, "10.77.7.0/24")
	// Someone already holds .2 and .3 (e.g. pods restored from another
	// host); allocation steps over them without touching them.
	for _, ip := range []string{"10.77.7.2", "10.77.7.3"} {
		if ok, _, err := a.leases.Take(ip, "other", nil); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if ip := a.alloc("mine"); ip != netip.MustParseAddr("10.77.7.4") {
		t.Fatalf("got %s, want 10.77.7.4", ip)
	}
	for _, ip := range []string{"10.77.7.2", "10.77.7.3"} {
		if o, _ := a.leases.Owner(ip); o != "other" {
			t.Errorf("lease %s now owned by %q, want other", ip, o)
		}
	}
}

func TestAllocateIPReclaimsStale(t *testing.T) {
	a := newAllocator(t, "10.77.8.0/29")
	for _, o := range []string{"dead1", "live1", "dead2", "live2", "live3"} {
		a.alloc(o)
	}
	a.wantExhausted() // without a stale callback nothing is reclaimed

	var asked []string
	a.stale = func(o string) bool {
		asked = append(asked, o)
		return strings.HasPrefix(o, "dead")
	}
	// The hint points back at .2 (dead1's) after the wrap.
	if ip := a.alloc("new1"); ip != netip.MustParseAddr("10.77.8.2") {
		t.Fatalf("got %s, want dead1's 10.77.8.2", ip)
	}
	// Next in order: .3 is live1's, .4 dead2's.
	if ip := a.alloc("new2"); ip != netip.MustParseAddr("10.77.8.4") {
		t.Fatalf("got %s, want dead2's 10.77.8.4", ip)
	}
	if !slices.Contains(asked, "dead1") || !slices.Contains(asked, "live1") || !slices.Contains(asked, "dead2") {
		t.Errorf("stale was asked about %q", asked)
	}
	a.wantExhausted()
	want := map[string]string{
		"10.77.8.2": "new1", "10.77.8.3": "live1", "10.77.8.4": "new2", "10.77.8.5": "live2", "10.77.8.6": "live3",
	}
	all, err := a.leases.All()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if all[k] != v {
			t.Errorf("lease %s = %q, want %q (all: %v)", k, all[k], v, all)
		}
	}
	if len(all) != len(want) {
		t.Errorf("leases %v, want %v", all, want)
	}
}

func TestAllocateIPHintSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ip-default")
	allocate := func(owner string) netip.Addr {
		t.Helper()
		// A fresh Network and Leases each time, as a new podctl process
		// would build them from its state.
		n, err := NewNetwork("default", "podctl0", "10.88.0.0/16", true)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := n.AllocateIP(t.Context(), statedir.Leases{Dir: dir}, owner, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ip
	}
	first := allocate("a")
	if first != netip.MustParseAddr("10.88.0.2") {
		t.Fatalf("first address = %s, want 10.88.0.2", first)
	}
	if err := (statedir.Leases{Dir: dir}).Release(first.String(), "a"); err != nil {
		t.Fatal(err)
	}
	// A new podctl must not hand out the address it just freed.
	if ip := allocate("b"); ip != netip.MustParseAddr("10.88.0.3") {
		t.Fatalf("after a restart got %s, want 10.88.0.3", ip)
	}
	// The hint is a dot file, not a lease.
	if _, err := os.Stat(filepath.Join(dir, ".next")); err != nil {
		t.Errorf("hint file: %v", err)
	}
	all, err := (statedir.Leases{Dir: dir}).All()
	if err != nil || len(all) != 1 || all["10.88.0.3"] != "b" {
		t.Errorf("All = %v, %v; want only 10.88.0.3 -> b", all, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

// TestAllocateIPCancelled checks that a cancelled context stops the
// search before any lease is taken.
func TestAllocateIPCancelled(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/16")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ip, err := a.n.AllocateIP(ctx, a.leases, "a", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("AllocateIP with a cancelled context = %s, %v; want Canceled", ip, err)
	}
	if all, err := a.leases.All(); err != nil || len(all) != 0 {
		t.Errorf("leases after a cancelled AllocateIP: %v, %v; want none", all, err)
	}
}

func TestAllocateIPCrossesOctetsAndWraps(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/16")
	write := func(hint string) {
		t.Helper()
		if err := os.MkdirAll(a.leases.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.leases.Dir, ".next"), []byte(hint+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("10.88.0.255")
	if ip := a.alloc("a"); ip != netip.MustParseAddr("10.88.0.255") {
		t.Fatalf("got %s, want 10.88.0.255", ip)
	}
	if ip := a.alloc("b"); ip != netip.MustParseAddr("10.88.1.0") {
		t.Fatalf("got %s, want 10.88.1.0", ip)
	}
	write("10.88.255.254")
	if ip := a.alloc("c"); ip != netip.MustParseAddr("10.88.255.254") {
		t.Fatalf("got %s, want 10.88.255.254 (last host)", ip)
	}
	// Past the last host it wraps to the first, skipping broadcast,
	// network and gateway.
	if ip := a.alloc("d"); ip != netip.MustParseAddr("10.88.0.2") {
		t.Fatalf("after the last host got %s, want 10.88.0.2", ip)
	}
}

func TestAllocateIPBadHints(t *testing.T) {
	for _, hint := range []string{
		"garbage",
		"",
		"192.168.1.5", // another network's
		"fd00::5",
		"10.66.0.0", // network address
		"10.66.0.1", // gateway
		"10.66.0.7", // broadcast
	} {
		a := newAllocator(t, "10.66.0.0/29")
		if err := os.MkdirAll(a.leases.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.leases.Dir, ".next"), []byte(hint), 0o600); err != nil {
			t.Fatal(err)
		}
		seen := map[netip.Addr]bool{}
		for i := 0; i < 5; i++ {
			ip, err := a.n.AllocateIP(a.t.Context(), a.leases, "o"+string(rune('a'+i)), nil)
			if err != nil {
				t.Fatalf("hint %q: allocation %d: %v", hint, i, err)
			}
			b := ip.As4()
			if !a.n.Subnet.Contains(ip) || b[3] < 2 || b[3] > 6 || seen[ip] {
				t.Fatalf("hint %q: allocated %s (seen %v)", hint, ip, seen)
			}
			seen[ip] = true
		}
		a.wantExhausted()
	}
	// A hint outside the subnet is ignored: allocation starts at the first host.
	a := newAllocator(t, "10.66.1.0/24")
	os.MkdirAll(a.leases.Dir, 0o700)
	os.WriteFile(filepath.Join(a.leases.Dir, ".next"), []byte("10.66.2.50"), 0o600)
	if ip := a.alloc("x"); ip != netip.MustParseAddr("10.66.1.2") {
		t.Fatalf("with a foreign hint got %s, want 10.66.1.2", ip)
	}
}

func TestEscapeOverlay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/var/lib/podctl/pods/web/upper", "/var/lib/podctl/pods/web/upper"},
		{"/a:b", `/a\:b`},
		{"/a,b", `/a\,b`},
		{`/a\b`, `/a\\b`},
		{`/x\:,y`, `/x\\\:\,y`},
		{"/a::b,,", `/a\:\:b\,\,`},
		{"", ""},
		{"/with space/and=equals", "/with space/and=equals"},
	}
	for _, tt := range tests {
		if got := escapeOverlay(tt.in); got != tt.want {
			t.Errorf("escapeOverlay(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
