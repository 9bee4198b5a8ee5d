package dock

import (
	"crypto/tls"
	"log/slog"
	"net/http"

	"github.com/podctl/podctl/internal/pki"
)

// Who did what: every request a dock serves is logged with the identity
// of the peer that made it, as its certificate states it (the node name
// podctl pki issued it to, and its serial number, as revoked.txt records
// it), and the handlers' own lines carry the same attributes.

// peerAttrs returns the log attributes naming the peer of a TLS
// connection: its certificate's node name (subject common name) and
// serial number.
func peerAttrs(cs *tls.ConnectionState) []any {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		// Serve refuses a configuration that does not require a
		// client certificate, so this is not expected.
		return []any{"peer", "", "serial", ""}
	}
	c := cs.PeerCertificates[0]
	return []any{"peer", c.Subject.CommonName, "serial", pki.Serial(c)}
}

// requestLog returns the dock's logger tagged with the identity of the
// peer that made r and the address it came from.
func (s *Server) requestLog(r *http.Request) *slog.Logger {
	return s.Log.With(append(peerAttrs(r.TLS), "remote", r.RemoteAddr)...)
}

// logRequests logs every request h serves, before serving it, with the
// peer's identity.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := []any{"method", r.Method, "path", r.URL.Path}
		if id := r.URL.Query().Get("session"); id != "" {
			attrs = append(attrs, "session", id)
		}
		s.requestLog(r).Info("request", attrs...)
		h.ServeHTTP(w, r)
	})
}

// logRefusals returns cfg, for a listener, made to log at warning level
// every handshake that its VerifyConnection refuses (a revoked
// certificate), with the peer's identity and address. (Refusals by
// crypto/tls itself, a certificate of another CA say, come before and go
// to http.Server's error log, at debug level: a port scanner makes them
// too, and what such a certificate names proves nothing.)
func (s *Server) logRefusals(cfg *tls.Config) *tls.Config {
	if cfg.VerifyConnection == nil || cfg.GetConfigForClient != nil {
		return cfg
	}
	outer := cfg.Clone()
	outer.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := cfg.Clone()
		remote := hello.Conn.RemoteAddr().String()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := cfg.VerifyConnection(cs)
			if err != nil {
				s.Log.Warn("handshake refused", append(peerAttrs(&cs), "remote", remote, "err", err)...)
			}
			return err
		}
		return c, nil
	}
	return outer
}
