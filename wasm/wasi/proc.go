package wasi

import (
	"context"
	"crypto/rand"
	"runtime"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// procExit is proc_exit: as in wazero, it closes the module with the exit
// code and ends the call with a *sys.ExitError carrying it.
func procExit(ctx context.Context, mod api.Module, stack []uint64) {
	code := uint32(stack[0])
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

// procRaise is proc_raise: there are no signals (ENOSYS, as wazero).
func procRaise(context.Context, api.Module, []uint64) errno {
	return errnoNosys
}

// schedYield is sched_yield.
func schedYield(context.Context, api.Module, []uint64) errno {
	runtime.Gosched()
	return errnoSuccess
}

// randomGet is random_get, from crypto/rand.
func randomGet(_ context.Context, mod api.Module, p []uint64) errno {
	buf, ok := mod.Memory().Read(uint32(p[0]), uint32(p[1]))
	if !ok {
		return errnoFault
	}
	if _, err := rand.Read(buf); err != nil {
		return errnoIo
	}
	return errnoSuccess
}

// sockUnsupported is sock_accept, sock_recv, sock_send and sock_shutdown.
// There are no sockets, since a socket could not move with the guest: an
// open descriptor is ENOTSUP, another EBADF.
func (s *System) sockUnsupported(_ context.Context, _ api.Module, p []uint64) errno {
	if _, e := s.lookup(uint32(p[0])); e != 0 {
		return e
	}
	return errnoNotsup
}
