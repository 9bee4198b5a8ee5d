package dock

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/version"
)

// Server is a dock: it takes migrating pods off the wire and hands them
// to its receivers. Native pods (CRIU) need Pods, which only Linux builds
// with cgo have; Wasm vessels go to Vessels, which every build has.
type Server struct {
	// Pods receives native pods; nil refuses them.
	Pods PodReceiver
	// Vessels receives vessel pods.
	Vessels VesselReceiver
	// Sessions lets the source of a migration reach the pod it sent
	// (nil: no source can).
	Sessions SessionPods
	// TLS must require and verify client certificates (pki.ServerConfig).
	TLS *tls.Config
	// Log receives one line per request, naming the peer that made it
	// (its certificate's node name and serial number), and the
	// migrations' own lines.
	Log *slog.Logger
	// HandshakeTimeout bounds the TLS handshake and the reading of a
	// request's headers (0: DefaultHandshakeTimeout): a peer that does
	// not authenticate in that time is dropped.
	HandshakeTimeout time.Duration
	// MaxConns bounds the connections open at once, authenticated or not
	// (0: DefaultMaxConns); more wait to be accepted.
	MaxConns int
	// Memory is the memory all the receives in progress may allocate
	// together (nil: no bound): each vessel's receiver reserves from its
	// request's lease (VesselTransfer.Memory) what it is about to
	// allocate, and a receive that cannot have it within the budget's
	// wait is refused as busy. Every open connection holds a share too,
	// what HTTP/2 lets a peer make the dock buffer (32 MiB): a connection
	// that cannot have it is closed at once.
	Memory *budget.Budget
	// Disk is the disk space all the receives in progress may fill
	// together while they stage what they receive (nil: no bound): the
	// pages of a stop-and-copy migration (reserved by the dock as they
	// arrive), the extracted archive (PodTransfer.Disk), a vessel's
	// snapshot file (VesselTransfer.Disk). What a pod keeps once it runs
	// is its own.
	Disk *budget.Budget

	sessions sessions
}

// The limits a dock applies to every peer, before and after it has
// authenticated.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxConns         = 64
	// maxStreams bounds the requests of one connection in flight at once:
	// a migration uses two (archive and page tunnel), a vessel's one.
	maxStreams = 16
	// idleTimeout closes a connection that has carried no request for
	// that long.
	idleTimeout = 2 * time.Minute
)

// Serve accepts connections on ln until ctx ends. It refuses a TLS
// configuration that does not require and verify client certificates.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if s.TLS == nil || s.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		ln.Close()
		return errors.New("dock: the TLS configuration must require and verify client certificates (pki.ServerConfig)")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathHello, s.hello)
	mux.HandleFunc("GET "+pathModules+"{hash}", s.hasModule)
	mux.HandleFunc("POST "+pathVessels, s.receiveVessel)
	mux.HandleFunc("POST "+pathDecide, s.decide)
	if s.Sessions != nil {
		mux.HandleFunc("GET "+pathSessions+"{session}", s.sessionPod)
		mux.HandleFunc("GET "+pathSessions+"{session}/{what}", s.sessionPod)
		mux.HandleFunc("DELETE "+pathSessions+"{session}", s.sessionPod)
	}
	if s.Pods != nil {
		mux.HandleFunc("POST "+pathPods, s.receivePod)
		mux.HandleFunc("POST "+pathPages, s.pages)
	}
	cfg := s.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	cfg = s.logRefusals(cfg)
	h2 := http2Config()
	h2.MaxConcurrentStreams = maxStreams
	// Every request's handler finishes (a receive rolls back what it
	// made) before Serve returns: a dock stopped by SIGTERM leaves
	// nothing half done.
	var handlers sync.WaitGroup
	tracked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:   s.logRequests(tracked),
		TLSConfig: cfg,
		// net/http bounds the TLS handshake by this too.
		ReadHeaderTimeout: cmp.Or(s.HandshakeTimeout, DefaultHandshakeTimeout),
		IdleTimeout:       idleTimeout,
		BaseContext: func(net.Listener) context.Context {
			return ctx
		},
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
		HTTP2:    h2,
		Protocols: func() *http.Protocols {
			var p http.Protocols
			p.SetHTTP2(true)
			return &p
		}(),
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		srv.Shutdown(sctx)
		// The handlers saw ctx end: they are rolling back.
		done := make(chan struct{})
		go func() { handlers.Wait(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			s.Log.Warn("dock: stopping with requests still being rolled back", "after", shutdownGrace)
		}
	}()
	ln = netutil.LimitListener(ln, cmp.Or(s.MaxConns, DefaultMaxConns))
	if s.Memory != nil {
		ln = budgetedListener{Listener: ln, mem: s.Memory, log: s.Log}
	}
	err := srv.Serve(tls.NewListener(ln, cfg))
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return err
}

// shutdownGrace bounds how long a stopping dock waits for its requests
// to finish rolling back.
const shutdownGrace = time.Minute

// LocalHello describes this host as a dock whose receiver of native pods
// is pods (nil: none).
func LocalHello(ctx context.Context, pods PodReceiver) *Hello {
	host, _ := os.Hostname()
	h := &Hello{
		PodctlVersion: version.Version, ISA: runtime.GOARCH, OS: runtime.GOOS,
		Kernel: kernelRelease(), Hostname: host,
	}
	h.CPUFeatures, _ = cpufeat.Host()
	h.Capabilities = append(h.Capabilities, CapabilityWasm)
	if pods != nil {
		pods.Describe(ctx, h)
	}
	return h
}

func (s *Server) hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(LocalHello(r.Context(), s.Pods))
}

// streamWindow is the HTTP/2 flow-control window of one stream. Go's
// default (1 MiB on the server side) throttles a memory tunnel to a
// fraction of what a LAN carries.
const streamWindow = 16 << 20
