package pod

import (
	"reflect"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns"
)

func TestParsePort(t *testing.T) {
	good := []struct {
		in   string
		want Port
	}{
		{"8080:80", Port{HostPort: 8080, PodPort: 80, Protocol: "tcp"}},
		{"8080:80/tcp", Port{HostPort: 8080, PodPort: 80, Protocol: "tcp"}},
		{"53:5353/udp", Port{HostPort: 53, PodPort: 5353, Protocol: "udp"}},
		{"1:1", Port{HostPort: 1, PodPort: 1, Protocol: "tcp"}},
		{"65535:65535/udp", Port{HostPort: 65535, PodPort: 65535, Protocol: "udp"}},
	}
	for _, tt := range good {
		got, err := ParsePort(tt.in)
		if err != nil {
			t.Errorf("ParsePort(%q) error: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParsePort(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}

	bad := []string{
		"",
		"8080",
		"8080/tcp",
		":80",
		"8080:",
		"0:80",
		"80:0",
		"65536:80",
		"80:65536",
		"-1:80",
		"+80:80",
		"80:80/sctp",
		"80:80/TCP",
		"80:80/",
		"80:80/tcp/udp",
		"a:80",
		"80:b",
		"80:80:80",
		" 80:80",
		"80:80 ",
		"0x50:80",
	}
	for _, in := range bad {
		got, err := ParsePort(in)
		if err == nil {
			t.Errorf("ParsePort(%q) = %+v, want an error", in, got)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidPort {
			t.Errorf("ParsePort(%q): kind %d, want InvalidPort (%d): %v", in, k, errdefs.InvalidPort, err)
		}
		if got != (Port{}) {
			t.Errorf("ParsePort(%q) returned %+v with an error, want the zero Port", in, got)
		}
	}
}

func TestPortString(t *testing.T) {
	p := Port{HostPort: 8080, PodPort: 80, Protocol: "udp"}
	if got, want := p.String(), "8080:80/udp"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	back, err := ParsePort(p.String())
	if err != nil || back != p {
		t.Errorf("ParsePort(String()) = %+v, %v; want %+v", back, err, p)
	}
}

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"1", 1},
		{"100", 100},
		{"100b", 100},
		{"100B", 100},
		{"1k", 1 << 10},
		{"1K", 1 << 10},
		{"1kb", 1 << 10},
		{"1KiB", 1 << 10},
		{"1kib", 1 << 10},
		{"512m", 512 << 20},
		{"512M", 512 << 20},
		{"512MB", 512 << 20},
		{"512MiB", 512 << 20},
		{"2g", 2 << 30},
		{"2GiB", 2 << 30},
		{"3t", 3 << 40},
		{"3TB", 3 << 40},
		{" 64m ", 64 << 20},
		{"4611686018427387904", 1 << 62},
		{"4194304t", 1 << 62},
	}
	for _, tt := range good {
		got, err := ParseSize(tt.in)
		if err != nil {
			t.Errorf("ParseSize(%q) error: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}

	bad := []string{
		"",
		" ",
		"0",
		"0k",
		"-1",
		"-1m",
		"k",
		"mb",
		"1.5g",
		"1p",
		"1x",
		"1 m",
		"m1",
		"1kk",
		"ten",
		"1e3",
		"0x10",
		"4611686018427387905",  // 1<<62 + 1
		"4194305t",             // just over 1<<62
		"9223372036854775808",  // overflows int64
		"99999999999999999999", // overflows int64
		"9007199254740992g",    // would overflow after multiplying
	}
	for _, in := range bad {
		got, err := ParseSize(in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidArgument {
			t.Errorf("ParseSize(%q): kind %d, want InvalidArgument (%d)", in, k, errdefs.InvalidArgument)
		}
		if got != 0 {
			t.Errorf("ParseSize(%q) returned %d with an error, want 0", in, got)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	valid := func() Spec {
		return Spec{
			Name:        "web",
			Image:       ImageHost,
			Command:     []string{"/bin/sh", "-c", "sleep 1"},
			Env:         []string{"A=1", "B=", "C=x=y"},
			Workdir:     "/srv",
			Ports:       []Port{{8080, 80, "tcp"}, {8080, 80, "udp"}, {8081, 80, "tcp"}},
			MemoryLimit: 64 << 20,
			PidsLimit:   100,
			Network:     "backend",
		}
	}
	tests := []struct {
		desc   string
		mutate func(*Spec)
		kind   errdefs.Kind // 0: valid
	}{
		{"full valid spec", func(*Spec) {}, 0},
		{"minimal", func(s *Spec) { *s = Spec{Name: "a", Command: []string{"x"}} }, 0},
		{"default network", func(s *Spec) { s.Network = "" }, 0},
		{"no workdir", func(s *Spec) { s.Workdir = "" }, 0},
		{"root workdir", func(s *Spec) { s.Workdir = "/" }, 0},
		{"zero limits", func(s *Spec) { s.MemoryLimit, s.PidsLimit = 0, 0 }, 0},
		{"same host port, other protocol", func(s *Spec) { s.Ports = []Port{{53, 53, "tcp"}, {53, 53, "udp"}} }, 0},
		{"same pod port, other host port", func(s *Spec) { s.Ports = []Port{{80, 80, "tcp"}, {81, 80, "tcp"}} }, 0},

		{"empty name", func(s *Spec) { s.Name = "" }, errdefs.InvalidName},
		{"upper-case name", func(s *Spec) { s.Name = "Web" }, errdefs.InvalidName},
		{"name ends with dash", func(s *Spec) { s.Name = "web-" }, errdefs.InvalidName},
		{"bad network name", func(s *Spec) { s.Network = "back_end" }, errdefs.InvalidName},
		{"network starts with dash", func(s *Spec) { s.Network = "-net" }, errdefs.InvalidName},
		{"no command", func(s *Spec) { s.Command = nil }, errdefs.Usage},
		{"empty command slice", func(s *Spec) { s.Command = []string{} }, errdefs.Usage},
		{"empty argv0", func(s *Spec) { s.Command = []string{"", "x"} }, errdefs.Usage},
		{"env without =", func(s *Spec) { s.Env = []string{"A=1", "NOVALUE"} }, errdefs.InvalidArgument},
		{"env empty key", func(s *Spec) { s.Env = []string{"=x"} }, errdefs.InvalidArgument},
		{"env empty", func(s *Spec) { s.Env = []string{""} }, errdefs.InvalidArgument},
		{"relative workdir", func(s *Spec) { s.Workdir = "srv" }, errdefs.InvalidArgument},
		{"dot workdir", func(s *Spec) { s.Workdir = "./srv" }, errdefs.InvalidArgument},
		{"negative memory", func(s *Spec) { s.MemoryLimit = -1 }, errdefs.InvalidArgument},
		{"negative pids", func(s *Spec) { s.PidsLimit = -1 }, errdefs.InvalidArgument},
		{"duplicate port", func(s *Spec) { s.Ports = append(s.Ports, Port{8080, 9090, "tcp"}) }, errdefs.Conflict},
		{"duplicate identical port", func(s *Spec) { s.Ports = []Port{{53, 53, "udp"}, {53, 53, "udp"}} }, errdefs.Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := valid()
			tt.mutate(&s)
			err := s.validate()
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil, want an error of kind %d", tt.kind)
			}
			if k := errdefs.KindOf(err); k != tt.kind {
				t.Fatalf("validate(): kind %d, want %d: %v", k, tt.kind, err)
			}
		})
	}
}

func TestEnvDefaults(t *testing.T) {
	got := env(Spec{Name: "web"})
	want := []string{"PATH=" + virtns.DefaultPath, "HOME=/root", "HOSTNAME=web", "TERM=xterm"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("env() = %q, want %q", got, want)
	}
}

func TestEnvOverridesKeepOrder(t *testing.T) {
	spec := Spec{Name: "web", Env: []string{
		"ZED=1",
		"HOME=/home/app",
		"A=x=y",
		"PATH=/opt/bin:/bin",
		"ZED=2", // later --env wins, in the first one's place
		"TERM=",
		"HOSTNAMEX=nope", // a longer key sharing a prefix must not replace HOSTNAME
	}}
	got := env(spec)
	want := []string{
		"PATH=/opt/bin:/bin",
		"HOME=/home/app",
		"HOSTNAME=web",
		"TERM=",
		"ZED=2",
		"A=x=y",
		"HOSTNAMEX=nope",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("env() =\n%q\nwant\n%q", got, want)
	}
	if spec.Env[0] != "ZED=1" || len(spec.Env) != 7 {
		t.Errorf("env() modified spec.Env: %q", spec.Env)
	}
}

func TestSetEnv(t *testing.T) {
	vars := []string{"A=1", "AB=2", "B=3"}
	vars = setEnv(vars, "A", "A=9")
	if want := []string{"A=9", "AB=2", "B=3"}; !reflect.DeepEqual(vars, want) {
		t.Fatalf("replace: %q, want %q", vars, want)
	}
	vars = setEnv(vars, "AB", "AB=")
	if want := []string{"A=9", "AB=", "B=3"}; !reflect.DeepEqual(vars, want) {
		t.Fatalf("replace with empty value: %q, want %q", vars, want)
	}
	vars = setEnv(vars, "C", "C=4")
	if want := []string{"A=9", "AB=", "B=3", "C=4"}; !reflect.DeepEqual(vars, want) {
		t.Fatalf("append: %q, want %q", vars, want)
	}
	// A key that is a prefix of an existing key must be appended, not
	// replace the longer one.
	vars = setEnv([]string{"PATHX=1"}, "PATH", "PATH=/bin")
	if want := []string{"PATHX=1", "PATH=/bin"}; !reflect.DeepEqual(vars, want) {
		t.Fatalf("prefix key: %q, want %q", vars, want)
	}
}

func TestLookupEnv(t *testing.T) {
	vars := []string{"PATHX=/nope", "PATH=/a:/b", "EMPTY=", "EQ=a=b"}
	tests := []struct{ key, want string }{
		{"PATH", "/a:/b"},
		{"PATHX", "/nope"},
		{"EMPTY", ""},
		{"EQ", "a=b"},
		{"MISSING", ""},
		{"PAT", ""},
	}
	for _, tt := range tests {
		if got := lookupEnv(vars, tt.key); got != tt.want {
			t.Errorf("lookupEnv(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := lookupEnv(env(Spec{Name: "x"}), "PATH"); got != virtns.DefaultPath {
		t.Errorf("default PATH = %q, want %q", got, virtns.DefaultPath)
	}
	if got := lookupEnv(env(Spec{Name: "x", Env: []string{"PATH=/custom"}}), "PATH"); got != "/custom" {
		t.Errorf("overridden PATH = %q, want /custom", got)
	}
}

func TestCommandLine(t *testing.T) {
	if got := (Spec{Command: []string{"sleep", "60"}}).CommandLine(); got != "sleep 60" {
		t.Errorf("native pod: %q", got)
	}
	if got := (Spec{Command: []string{"/podctl", "_vessel"}, Vessel: &VesselRef{Name: "v", Args: []string{"app.wasm", "-x"}}}).CommandLine(); got != "wasm:app.wasm -x" {
		t.Errorf("housed vessel: %q", got)
	}
}

func TestParseVolume(t *testing.T) {
	for _, c := range []struct {
		in   string
		want VolumeMount
		bad  bool
	}{
		{in: "data:/data", want: VolumeMount{Name: "data", Destination: "/data"}},
		{in: "data:/var/lib/db/:ro", want: VolumeMount{Name: "data", Destination: "/var/lib/db", ReadOnly: true}},
		{in: "data:/data:rw", want: VolumeMount{Name: "data", Destination: "/data"}},
		{in: "/srv/www/:/www:ro", want: VolumeMount{Source: "/srv/www", Destination: "/www", ReadOnly: true}},
		{in: "data", bad: true},
		{in: "data:data", bad: true},
		{in: "Data:/data", bad: true},
		{in: "./www:/www", bad: true},
		{in: "data:/data:rx", bad: true},
		{in: "data:/data:ro:x", bad: true},
	} {
		got, err := ParseVolume(c.in)
		if c.bad {
			if err == nil || !errdefs.Is(err, errdefs.InvalidArgument) {
				t.Errorf("ParseVolume(%q) = %+v, %v; want an invalid-argument error", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestValidateVolumes(t *testing.T) {
	ok := []VolumeMount{{Name: "a", Destination: "/a"}, {Source: "/srv", Destination: "/srv", ReadOnly: true}}
	if err := validateVolumes(ok); err != nil {
		t.Errorf("validateVolumes(%v) = %v", ok, err)
	}
	for _, vs := range [][]VolumeMount{
		{{Name: "a", Destination: "/"}},
		{{Name: "a", Destination: "/proc/x"}},
		{{Name: "a", Destination: "/sys"}},
		{{Name: "a", Destination: "/dev/shm"}},
		{{Name: "a", Destination: "/.podctl/init"}},
		{{Name: "a", Destination: "/a/../b"}},
		{{Name: "a", Destination: "/a"}, {Name: "b", Destination: "/a"}},
		{{Destination: "/a"}},
		{{Name: "a", Source: "/a", Destination: "/a"}},
		{{Source: "srv", Destination: "/a"}},
	} {
		if err := validateVolumes(vs); err == nil {
			t.Errorf("validateVolumes(%+v) accepted", vs)
		}
	}
	// /process is not under /proc.
	if err := validateVolumes([]VolumeMount{{Name: "a", Destination: "/process"}}); err != nil {
		t.Errorf("/process refused: %v", err)
	}
}
