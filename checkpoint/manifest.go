// Package checkpoint is the checkpoint stage: it freezes a pod, cuts it
// from the network and dumps it with CRIU (Begin, Frozen.Dump), resumes
// it if what follows fails (Frozen.Resume), and writes podctl checkpoint
// archives: one stream that carries everything needed to restore a pod
// elsewhere (its description, its CRIU images and its overlayfs writable
// layer). Package pod decides when (its lifecycle and state); package
// restart reads the archives and restarts the pod. The format is specified in docs/archive-format.md; the manifest,
// entry names and checksum encoding defined here are shared with the
// reader.
package checkpoint

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/version"
	"github.com/podctl/podctl/virtns"
)

// FormatVersion is the version of the archive format this podctl writes and
// the only one it reads. A change that an older reader would misinterpret
// if it ignored it (rather than a new optional manifest field) increments it.
const FormatVersion = 1

// Entry names and name prefixes of the archive format.
const (
	// ManifestName is the first entry of every archive: the JSON Manifest.
	ManifestName = "manifest.json"
	// ChecksumsName is the last entry of every archive: the JSON Checksums.
	ChecksumsName = "checksums.json"
	// CRIUPrefix starts the name of every CRIU image entry, "criu/NAME".
	CRIUPrefix = "criu/"
	// UpperRoot is the entry for the root directory of the overlayfs
	// writable layer; the layer's other entries are under UpperPrefix.
	UpperRoot = "upper"
	// UpperPrefix starts the name of every entry of the writable layer
	// other than its root.
	UpperPrefix = UpperRoot + "/"
	// VolumesPrefix starts the root entry of each named volume,
	// "volumes/NAME", after the writable layer; the volume's other
	// entries are under "volumes/NAME/".
	VolumesPrefix = "volumes/"
)

// VolumeRoot is the entry of the root directory of the named volume name.
func VolumeRoot(name string) string { return VolumesPrefix + name }

// ChecksumAlgorithm is the only value of Checksums.Algorithm.
const ChecksumAlgorithm = "sha256"

// ImagesCRIU is the only Images.Kind: CRIU image files under criu/.
const ImagesCRIU = "criu"

// ZstdMagic starts a zstd-compressed archive (bytes 28 B5 2F FD); anything
// else is read as a plain tar stream.
const ZstdMagic = "\x28\xb5\x2f\xfd"

// xattrPrefixes are the extended attribute namespaces an archive carries
// (as PAX "SCHILY.xattr." records). Others (security.*, system.*) are not
// written and are refused on reading.
var xattrPrefixes = []string{"trusted.overlay.", "user."}

// PAXXattrPrefix starts the PAX record key of an extended attribute.
const PAXXattrPrefix = "SCHILY.xattr."

// Manifest describes a checkpointed pod: where it was taken, what the pod
// is, and how its images are stored. It is the archive's first entry, so a
// receiver can refuse an archive before reading the rest of it.
type Manifest struct {
	// FormatVersion is the archive format version, FormatVersion when
	// written by this podctl.
	FormatVersion int `json:"formatVersion"`
	// PodctlVersion is the version of the podctl that wrote the archive.
	PodctlVersion string `json:"podctlVersion"`
	// CreatedAt is when the checkpoint was taken.
	CreatedAt time.Time `json:"createdAt"`
	// Source describes the host the pod was checkpointed on, which the
	// restoring host must be compatible with.
	Source Source `json:"source"`
	// Pod is the pod's spec and identity. It is opaque to this package;
	// package pod fills and reads it.
	Pod json.RawMessage `json:"pod,omitempty"`
	// Network is the pod's network identity, which it keeps across a
	// restore so that its peers' connections survive.
	Network Network `json:"network"`
	// Images describes how the process images are stored.
	Images Images `json:"images"`
	// Volumes are the named volumes whose files the archive carries,
	// after the writable layer, in this order.
	Volumes []Volume `json:"volumes,omitempty"`
}

// Volume is a named volume an archive carries.
type Volume struct {
	// Name is the volume's name, which the restoring host keeps.
	Name string `json:"name"`
	// ID tells this volume from another of the same name: a restoring
	// host that has a volume of that name takes the archive's files
	// only if the IDs match (its copy is then an earlier state of the
	// same volume).
	ID string `json:"id"`
}

// Source describes the host a checkpoint was taken on.
type Source struct {
	// ISA is the instruction set, as GOARCH spells it ("amd64", "arm64").
	ISA string `json:"isa"`
	// CPUFeatures are the CPU features the host had (and that the pod's
	// processes may therefore be using).
	CPUFeatures []string `json:"cpuFeatures,omitempty"`
	// Kernel is the kernel release (uname -r).
	Kernel string `json:"kernel"`
	// CRIUVersion is the version of CRIU that dumped the pod.
	CRIUVersion string `json:"criuVersion"`
	// Hostname is the host's name.
	Hostname string `json:"hostname"`
}

// Network is a pod's network identity.
type Network struct {
	// IP is the pod's address, empty when it has none.
	IP string `json:"ip,omitempty"`
	// MAC is the pod's hardware address, empty when it has none.
	MAC string `json:"mac,omitempty"`
	// Ports are the host ports published to the pod.
	Ports []PublishedPort `json:"ports,omitempty"`
}

// PublishedPort is one published port: HostPort on the host forwards to
// PodPort on the pod.
type PublishedPort struct {
	// HostPort is the port on the host, 1 to 65535.
	HostPort int `json:"hostPort"`
	// PodPort is the port on the pod, 1 to 65535.
	PodPort int `json:"podPort"`
	// Protocol is "tcp" or "udp".
	Protocol string `json:"protocol"`
}

// Images describes how a pod's process images are stored.
type Images struct {
	// Kind is the image format; ImagesCRIU is the only one.
	Kind string `json:"kind"`
	// Lazy is true when the memory pages are not in the archive but are
	// fetched from the source host while the pod runs (CRIU lazy pages).
	Lazy bool `json:"lazy"`
	// PagesIncluded is true when the memory pages are in the archive.
	PagesIncluded bool `json:"pagesIncluded"`
	// PagesStreamed is true when the memory pages travel beside the
	// archive, on a stop-and-copy migration's page tunnel, whose every
	// batch is checksummed.
	PagesStreamed bool `json:"pagesStreamed,omitempty"`
}

// Pages says where a pod's memory pages travel.
type Pages int

const (
	// PagesInArchive: in the archive, under its checksums.
	PagesInArchive Pages = iota
	// PagesStreamed: beside the archive, on a stop-and-copy migration's
	// page tunnel (each batch checksummed).
	PagesStreamed
	// PagesLazy: fetched from the source while the restored pod runs.
	PagesLazy
)

// Validate checks that m is a manifest this podctl can restore from. Its
// errors are of kind errdefs.InvalidArgument; a reader reclassifies them.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return errdefs.New(errdefs.InvalidArgument, format, args...)
	}
	if m.FormatVersion != FormatVersion {
		return bad("unsupported format version %d (this podctl reads version %d)", m.FormatVersion, FormatVersion)
	}
	if m.Source.ISA == "" {
		return bad("manifest: source.isa is empty")
	}
	if m.Images.Kind != ImagesCRIU {
		return bad("manifest: unknown images.kind %q (want %q)", m.Images.Kind, ImagesCRIU)
	}
	if n := count(m.Images.Lazy, m.Images.PagesIncluded, m.Images.PagesStreamed); n != 1 {
		return bad("manifest: exactly one of images.lazy, images.pagesIncluded and images.pagesStreamed must be set (%d are)", n)
	}
	if len(m.Pod) > 0 && !json.Valid(m.Pod) {
		return bad("manifest: pod is not valid JSON")
	}
	if m.Network.IP != "" {
		if _, err := netip.ParseAddr(m.Network.IP); err != nil {
			return bad("manifest: network.ip %q is not an IP address", m.Network.IP)
		}
	}
	if m.Network.MAC != "" {
		if _, err := net.ParseMAC(m.Network.MAC); err != nil {
			return bad("manifest: network.mac %q is not a MAC address", m.Network.MAC)
		}
	}
	for _, p := range m.Network.Ports {
		if p.HostPort < 1 || p.HostPort > 65535 || p.PodPort < 1 || p.PodPort > 65535 {
			return bad("manifest: published port %d:%d is out of range", p.HostPort, p.PodPort)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return bad("manifest: published port %d:%d has protocol %q (want tcp or udp)", p.HostPort, p.PodPort, p.Protocol)
		}
	}
	seen := map[string]bool{}
	for _, v := range m.Volumes {
		if names.Validate(v.Name) != nil || seen[v.Name] {
			return bad("manifest: volume name %q is invalid or given twice", v.Name)
		}
		seen[v.Name] = true
		if !validVolumeID(v.ID) {
			return bad("manifest: volume %s has an invalid id %q", v.Name, v.ID)
		}
	}
	return nil
}

// validVolumeID reports whether id is 32 lower-case hex digits.
func validVolumeID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Checksums is the archive's last entry: the checksum of every other entry.
type Checksums struct {
	// Algorithm is ChecksumAlgorithm.
	Algorithm string `json:"algorithm"`
	// Entries maps each entry name to the lower-case hex EntryHash of the
	// entry.
	Entries map[string]string `json:"entries"`
}

// AllowedXattr reports whether the extended attribute name is in one of the
// namespaces an archive carries: trusted.overlay.* and user.*.
func AllowedXattr(name string) bool {
	for _, p := range xattrPrefixes {
		if len(name) > len(p) && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// EntryHash returns a SHA-256 hash that has absorbed the canonical encoding
// of hdr's fields. Write the entry's content (hdr.Size bytes) to it and
// take its Sum to get the entry's checksum. The encoding, as specified in
// docs/archive-format.md, is each of these in turn, where u64 is an 8-byte
// little-endian two's-complement integer and str is a u64 length followed
// by that many bytes:
//
//	str name, 1 byte typeflag, u64 mode, u64 uid, u64 gid, u64 size,
//	str linkname, u64 devmajor, u64 devminor, u64 mtime (Unix seconds),
//	u64 number of xattrs, then per xattr in ascending byte order of name:
//	str name, str value
//
// The xattrs are those of hdr.PAXRecords whose key starts with
// PAXXattrPrefix, named without that prefix.
func EntryHash(hdr *tar.Header) hash.Hash {
	var xattrs []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, PAXXattrPrefix) {
			xattrs = append(xattrs, k)
		}
	}
	slices.Sort(xattrs)

	n := 8 + len(hdr.Name) + 1 + 8*4 + 8 + len(hdr.Linkname) + 8*4
	for _, k := range xattrs {
		n += 16 + len(k) - len(PAXXattrPrefix) + len(hdr.PAXRecords[k])
	}
	b := make([]byte, 0, n)
	u64 := func(v int64) { b = binary.LittleEndian.AppendUint64(b, uint64(v)) }
	str := func(s string) { u64(int64(len(s))); b = append(b, s...) }
	str(hdr.Name)
	b = append(b, hdr.Typeflag)
	u64(hdr.Mode)
	u64(int64(hdr.Uid))
	u64(int64(hdr.Gid))
	u64(hdr.Size)
	str(hdr.Linkname)
	u64(hdr.Devmajor)
	u64(hdr.Devminor)
	u64(hdr.ModTime.Unix())
	u64(int64(len(xattrs)))
	for _, k := range xattrs {
		str(k[len(PAXXattrPrefix):])
		str(hdr.PAXRecords[k])
	}
	h := sha256.New()
	h.Write(b)
	return h
}

// NewManifest describes a pod for the archive about to be written: pod is
// its JSON description, endpoint its address, ports what it publishes,
// criuVersion the CRIU that dumps it, and pages says where its memory
// travels. The source is this host; an archive made where the CPU's
// features cannot be read is refused, since no destination could then
// check them.
func NewManifest(pod []byte, endpoint virtns.Endpoint, ports []PublishedPort, criuVersion string, pages Pages) (*Manifest, error) {
	feats, err := cpufeat.Host()
	if err != nil {
		return nil, err
	}
	if cpufeat.Known(runtime.GOARCH) && len(feats) == 0 {
		return nil, errors.New("cpu features: /proc/cpuinfo lists none")
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	host, _ := os.Hostname()
	return &Manifest{
		FormatVersion: FormatVersion,
		PodctlVersion: version.Version,
		CreatedAt:     time.Now().UTC(),
		Source: Source{
			ISA: runtime.GOARCH, CPUFeatures: feats, Kernel: unix.ByteSliceToString(uts.Release[:]),
			CRIUVersion: criuVersion, Hostname: host,
		},
		Pod:     pod,
		Network: Network{IP: endpoint.IP.String(), MAC: endpoint.MAC, Ports: ports},
		Images: Images{
			Kind: ImagesCRIU, Lazy: pages == PagesLazy,
			PagesIncluded: pages == PagesInArchive, PagesStreamed: pages == PagesStreamed,
		},
	}, nil
}

// count is how many of bs are true.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
