//go:build !(linux && cgo)

package dock

import (
	"context"
	"log/slog"
	"net/http"
)

// Native is the dock's CRIU side. This build has none: it receives Wasm
// vessels only.
type Native struct{}

func (*Native) register(*http.ServeMux, *slog.Logger) {}

func nativeHello(context.Context, *Hello) {}
