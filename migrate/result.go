package migrate

import "time"

// Result reports a finished migration, whichever route it took. The
// details of the route are in exactly one of CRIU and Snapshot; in JSON
// their fields sit beside the common ones.
type Result struct {
	// Pod is the pod's name at the destination, Dock the dock's address.
	Pod  string `json:"pod"`
	Dock string `json:"dock"`
	// Session names the migration: with it, this host reaches the pod
	// at the dock (`podctl session`, dock.Client.InspectSession).
	Session string `json:"session"`
	// Mode is "criu" (stop-and-copy), "criu-lazy" (post-copy) or "wasm"
	// (a portable snapshot).
	Mode string `json:"mode"`
	*CRIUResult
	*SnapshotResult
	// Transfer is the time spent sending what the route sends after the
	// pod stopped (the rest of the archive, or the snapshot); Restore is
	// the destination's restore; Downtime runs from the pod's last moment
	// running here to the moment this host learnt it runs at the
	// destination (so it includes half a round trip more than the true
	// downtime); Total is the whole migration.
	Transfer time.Duration `json:"transferNs"`
	Restore  time.Duration `json:"restoreNs"`
	Downtime time.Duration `json:"downtimeNs"`
	Total    time.Duration `json:"totalNs"`
}

// CRIUResult is what a migration through CRIU took.
type CRIUResult struct {
	// IP is the pod's address, the same at the destination.
	IP string `json:"ip"`
	// Freeze is from the freeze to the start of CRIU's dump (network
	// lock included); Dump is CRIU's dump (with stop-and-copy it sends
	// the memory too); PostCopy is how long memory kept arriving after
	// the pod resumed at the destination (--live).
	Freeze   time.Duration `json:"freezeNs"`
	Dump     time.Duration `json:"dumpNs"`
	PostCopy time.Duration `json:"postCopyNs,omitempty"`
	// ArchiveBytes and PageBytes are what was sent: the archive stream
	// and the memory pages tunnel.
	ArchiveBytes int64 `json:"archiveBytes"`
	PageBytes    int64 `json:"pageBytes"`
}

// SnapshotResult is what a migration as a portable snapshot took.
type SnapshotResult struct {
	// ISA is the destination's.
	ISA string `json:"isa"`
	// Safepoint is the time-to-safepoint; Capture reading the vessel's
	// state; Write encoding the snapshot.
	Safepoint time.Duration `json:"safepointNs"`
	Capture   time.Duration `json:"captureNs"`
	Write     time.Duration `json:"writeNs"`
	// Bytes is the snapshot's size; WithModule says whether it carried
	// the module (the dock did not have it).
	Bytes      int64 `json:"bytes"`
	WithModule bool  `json:"withModule"`
}
