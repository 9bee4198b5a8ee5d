// Package dock is podctl's migration service: the dock daemon that
// receives pods (Server) and the client side of `podctl migrate` (Migrate).
//
// Docks speak HTTP/2 over mutual TLS (see internal/pki): a peer without a
// certificate signed by the cluster's CA, or with a revoked one, is
// refused during the TLS handshake, before a byte of any archive is read. One migration uses
// three requests on one connection:
//
//	GET  /v1/hello                   what the dock is (ISA, CRIU, CPU features)
//	POST /v1/pods?session=S&...      the archive, streamed as it is produced;
//	                                 the response is a stream of JSON events
//	POST /v1/pages?session=S         a raw byte tunnel between the two CRIUs'
//	                                 page-server connection (memory pages)
//
// The archive request carries everything but memory: CRIU sends pages over
// the page tunnel while it dumps (stop-and-copy) or serves them on demand
// after the destination has resumed the pod (--live, post-copy).
package dock

import (
	"time"
)

// Hello describes a dock.
type Hello struct {
	PodctlVersion string   `json:"podctlVersion"`
	ISA           string   `json:"isa"`
	OS            string   `json:"os"`
	Kernel        string   `json:"kernel"`
	Hostname      string   `json:"hostname"`
	CRIUVersion   string   `json:"criuVersion,omitempty"`
	CPUFeatures   []string `json:"cpuFeatures,omitempty"`
	// Capabilities lists what the dock can receive (Capability*).
	Capabilities []string `json:"capabilities"`
}

// What a dock can receive.
const (
	// CapabilityCRIU is native pods as CRIU images (same ISA only).
	CapabilityCRIU = "criu"
	// CapabilityCRIULazy is native pods with post-copy (--live).
	CapabilityCRIULazy = "criu-lazy"
	// CapabilityWasm is Wasm vessels as portable snapshots (any ISA).
	CapabilityWasm = "wasm"
)

// Has reports whether the dock has a capability.
func (h *Hello) Has(capability string) bool {
	for _, c := range h.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// Event is one line of a receive response.
type Event struct {
	// Type is "accepted" (the manifest was checked and the pod's name,
	// address and ports are reserved: the source may freeze it),
	// "restored" (the pod runs at the destination), "complete" (post-copy:
	// every page has arrived) or "error".
	Type string `json:"type"`
	// Pod and IP name the received pod.
	Pod string `json:"pod,omitempty"`
	IP  string `json:"ip,omitempty"`
	// Restore is how long the destination's restore took.
	Restore time.Duration `json:"restoreNs,omitempty"`
	// Bytes is how many archive bytes the destination read.
	Bytes int64 `json:"bytes,omitempty"`
	// Error and Kind describe a failure (Kind is an errdefs.Kind).
	Error string `json:"error,omitempty"`
	Kind  int    `json:"kind,omitempty"`
}

// Event types.
const (
	EventAccepted = "accepted"
	EventRestored = "restored"
	EventComplete = "complete"
	// EventDecided answers a decision (Client.Decide): carried out.
	EventDecided = "decided"
	EventError   = "error"
)

const (
	pathHello  = "/v1/hello"
	pathPods   = "/v1/pods"
	pathPages  = "/v1/pages"
	pathDecide = "/v1/decide"
)
