//go:build !linux

package vessel

import "github.com/tetratelabs/wazero/api"

// nativeStack is a reserved machine stack, on Linux only: elsewhere
// guests run on wazero's own (see NativeStackBytes in stack_linux.go).
type nativeStack struct{}

func newNativeStack(...api.Function) *nativeStack { return nil }

func (*nativeStack) release() {}

// UseNativeStack does nothing: there is no native stack outside Linux.
func UseNativeStack(api.Function) (release func(), ok bool) { return func() {}, false }
