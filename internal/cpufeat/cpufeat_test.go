package cpufeat

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) Features {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	feat, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return feat
}

// /proc/cpuinfo of a KVM guest on a Sapphire Rapids host (captured from a
// CI machine, first two processors) and of a bare-metal Skylake desktop
// (a typical Linux 5.x listing, with its "vmx flags" and "bugs" lines).
const (
	guest     = "sapphirerapids-kvm-guest.txt"
	bareMetal = "skylake-bare-metal.txt"
)

func TestParse(t *testing.T) {
	f := parseFile(t, guest)
	if len(f) != 108 {
		t.Errorf("guest has %d flags, want 108", len(f))
	}
	if !slices.IsSorted(f) {
		t.Error("features not sorted")
	}
	for _, flag := range []string{"fpu", "pni", "avx512f", "amx_tile", "hypervisor"} {
		if !f.Has(flag) {
			t.Errorf("guest lacks %q", flag)
		}
	}
	// "vmx flags" and "bugs" are not the flags line.
	s := parseFile(t, bareMetal)
	for _, flag := range []string{"preemption_timer", "cpu_meltdown", "spectre_v1"} {
		if s.Has(flag) {
			t.Errorf("bare metal has %q, from a line other than flags", flag)
		}
	}
	if !s.Has("vmx") || s.Has("avx512f") {
		t.Errorf("bare metal: vmx %v, avx512f %v", s.Has("vmx"), s.Has("avx512f"))
	}
}

func TestParseFirstProcessorOnly(t *testing.T) {
	f, err := Parse(strings.NewReader("processor\t: 0\nflags\t\t: sse2 avx sse2\n\nprocessor\t: 1\nflags\t\t: sse2 avx avx2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Features{"avx", "sse2"}); !slices.Equal(f, want) {
		t.Errorf("Parse = %v, want %v", f, want)
	}
}

func TestParseArm64(t *testing.T) {
	f := parseFile(t, "arm64-neoverse-n1.txt")
	if len(f) != 17 || !f.Has("atomics") || !f.Has("asimd") {
		t.Errorf("arm64 features %v", f)
	}
	need := New(append(slices.Clone(f), "sve", "sve2")...)
	if got := Missing(f, need); !slices.Equal(got, []string{"sve", "sve2"}) {
		t.Errorf("Missing(n1, n1+sve) = %v, want [sve sve2]", got)
	}
}

func TestParseNoFlags(t *testing.T) {
	f, err := Parse(strings.NewReader("processor\t: 0\nmodel name\t: something\n"))
	if err != nil || f == nil || len(f) != 0 {
		t.Errorf("Parse without flags = %#v, %v; want an empty set", f, err)
	}
}

func TestMissingSame(t *testing.T) {
	for _, name := range []string{guest, bareMetal} {
		f := parseFile(t, name)
		if got := Missing(f, f); len(got) != 0 {
			t.Errorf("Missing(%s, itself) = %v", name, got)
		}
	}
}

// From the bare-metal Skylake to the Sapphire Rapids guest: what Skylake
// exposes and the guest does not, minus the virtualization, power
// management and mitigation flags.
func TestMissingBareMetalToGuest(t *testing.T) {
	got := Missing(parseFile(t, guest), parseFile(t, bareMetal))
	want := []string{
		"arch_perfmon", "art", "bts", "ds_cpl", "dtes64", "dts", "intel_pt",
		"invpcid_single", "monitor", "mpx", "pbe", "pdcm", "pebs", "sdbg", "smx", "xtpr",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Missing(guest, bare metal) =\n%v\nwant\n%v", got, want)
	}
	for _, flag := range []string{"vmx", "ept", "vpid", "hwp", "aperfmperf", "pti", "ibrs", "est", "constant_tsc"} {
		if slices.Contains(got, flag) {
			t.Errorf("Missing reports ignorable %q", flag)
		}
	}
}

// From the guest to the bare-metal Skylake: the AVX-512 and AMX families
// and the newer instructions are missing, the hypervisor flag is not.
func TestMissingGuestToBareMetal(t *testing.T) {
	got := Missing(parseFile(t, bareMetal), parseFile(t, guest))
	for _, flag := range []string{"avx512f", "avx512bw", "amx_tile", "sha_ni", "vaes", "rdpid", "movdiri", "serialize", "umip", "clwb"} {
		if !slices.Contains(got, flag) {
			t.Errorf("Missing(bare metal, guest) lacks %q", flag)
		}
	}
	for _, flag := range []string{"hypervisor", "tsc_known_freq", "cpuid_fault", "arat", "fpu", "avx2"} {
		if slices.Contains(got, flag) {
			t.Errorf("Missing(bare metal, guest) reports %q", flag)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Missing result not sorted: %v", got)
	}
}

func TestIgnorable(t *testing.T) {
	for _, flag := range []string{"hypervisor", "constant_tsc", "nonstop_tsc", "tsc_known_freq", "rep_good", "nopl", "xtopology", "cpuid", "aperfmperf", "arat", "vmx", "svm"} {
		if !Ignorable(flag) {
			t.Errorf("Ignorable(%q) = false", flag)
		}
	}
	for _, flag := range []string{"pni", "tsc", "rdtscp", "sse4_2", "avx2", "avx512f", "aes", "fsgsbase", "rdrand", "lm", "user_shstk", "waitpkg", "atomics", "sve", "unknown_future_flag"} {
		if Ignorable(flag) {
			t.Errorf("Ignorable(%q) = true", flag)
		}
	}
}

func TestMissingUnsorted(t *testing.T) {
	// Sets decoded from another host may not be normalized.
	if got := Missing(Features{"sse2", "avx", "aes"}, Features{"avx2", "aes", "avx2", "sse2"}); !slices.Equal(got, []string{"avx2"}) {
		t.Errorf("Missing = %v, want [avx2]", got)
	}
}

func TestHost(t *testing.T) {
	f, err := Host()
	if err != nil {
		t.Fatal(err)
	}
	switch runtime.GOARCH {
	case "amd64", "386":
		if !f.Has("fpu") {
			t.Errorf("Host() = %v: no fpu", f)
		}
	case "arm64":
		if !f.Has("fp") {
			t.Errorf("Host() = %v: no fp", f)
		}
	default:
		if len(f) != 0 {
			t.Errorf("Host() on %s = %v, want empty", runtime.GOARCH, f)
		}
	}
}
