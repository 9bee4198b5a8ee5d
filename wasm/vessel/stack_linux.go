package vessel

import (
	"reflect"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// NativeStackBytes is the size of the machine stack a vessel reserves for
// its guest under wazero's compiler: address space only, backed page by
// page as the guest's calls nest deeper.
//
// wazero starts a call on a 10 KiB stack and, whenever it runs out,
// allocates one twice as large on the Go heap and copies the old one into
// it. For deep recursion that is slow, and slow all at once: the
// 50,000-frame workload (some 560 bytes a frame, prepared and compiled)
// grows it twelve times to 44 MiB, and its last two doublings took 7-30
// and 14-33 ms on the project's machines (fresh pages faulted in while 11
// and 22 MiB are copied), time in which the guest reaches no poll point:
// a stop requested then waited for them (time-to-safepoint p99 17-20 ms
// where it was otherwise under 5). On a stack of this size the guest never
// grows it; each new page costs a fault of a microsecond or two when the
// recursion first reaches it, and pages reached once stay for the next
// stop and rewind. It is larger than wazero's own limit (a stack of more
// than 400 MB is not grown, so some 670 MB at most), so guests overflow
// no sooner than before: past it, wazero reports stack exhaustion.
const NativeStackBytes = 1 << 30

// nativeStackTopGap is how far below the end of its reservation a native
// stack starts (see newNativeStack).
const nativeStackTopGap = 2048

// nativeStack is a reserved machine stack (see NativeStackBytes).
type nativeStack struct{ mem []byte }

// newNativeStack gives fns, exported functions of a module compiled by
// wazero's compiler that are not running, one reserved stack to run on
// (one at a time), and returns it; it returns nil, leaving them on
// wazero's own stacks, if it cannot (another engine, a wazero whose call
// engine has changed, or no address space). The stack must outlive every
// call of fns: release it only once the last has returned.
//
// wazero has no option for the size of its stacks. A call engine keeps
// its stack in three fields (the slice, its aligned top, and the bottom
// the compiled code checks against), which wazero itself replaces
// together when it grows a stack or restores a snapshot. They are
// found by name and type, and nothing is changed unless all three are
// there as expected in every function.
func newNativeStack(fns ...api.Function) *nativeStack {
	type fields struct{ stack, top, bottom reflect.Value }
	var engines []fields
	for _, fn := range fns {
		p := reflect.ValueOf(fn)
		if p.Kind() != reflect.Pointer || p.Elem().Kind() != reflect.Struct || p.Elem().Type().String() != "wazevo.callEngine" {
			return nil
		}
		ce := p.Elem()
		f := fields{
			stack: field(ce, "stack", reflect.TypeOf([]byte(nil))),
			top:   field(ce, "stackTop", reflect.TypeOf(uintptr(0))),
		}
		execCtx := ce.FieldByName("execCtx")
		if !f.stack.IsValid() || !f.top.IsValid() || execCtx.Kind() != reflect.Struct {
			return nil
		}
		if f.bottom = field(execCtx, "stackBottomPtr", reflect.TypeOf((*byte)(nil))); !f.bottom.IsValid() {
			return nil
		}
		engines = append(engines, f)
	}
	if len(engines) == 0 {
		return nil
	}
	mem, err := unix.Mmap(-1, 0, NativeStackBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	// A guard page under the bottom, which the compiled code never
	// passes (it checks its frames against the bottom).
	guard := unix.Getpagesize()
	if err := unix.Mprotect(mem[:guard], unix.PROT_NONE); err != nil {
		unix.Munmap(mem)
		return nil
	}
	s := mem[guard:]
	// The top is half a page below the end. At the very end of a page
	// it made the file workload's compiled code 20-30 % slower (likely
	// 4 KiB aliasing: its hottest frames then have the same low 12
	// address bits as those of other stacks that start at a page end,
	// and the CPU takes loads from one for stores to the other).
	// wazero's own stacks, Go slices of any length, ended anywhere.
	top := uintptr(unsafe.Pointer(&s[len(s)-1])) - nativeStackTopGap
	top &^= 15 // wazero wants it 16-byte aligned
	for _, f := range engines {
		f.stack.Set(reflect.ValueOf(s))
		f.top.SetUint(uint64(top))
		f.bottom.Set(reflect.ValueOf(&s[0]))
	}
	return &nativeStack{mem: mem}
}

// UseNativeStack gives fn the machine stack a vessel's guest runs on (see
// NativeStackBytes), so that an unprepared module run outside a vessel,
// as the benchmarks' baseline, runs on the same footing. It reports
// whether it could, and returns the function that releases the stack,
// to call once fn's last call has returned.
func UseNativeStack(fn api.Function) (release func(), ok bool) {
	s := newNativeStack(fn)
	return s.release, s != nil
}

// field returns s's field name, settable, if it has type t.
func field(s reflect.Value, name string, t reflect.Type) reflect.Value {
	f := s.FieldByName(name)
	if !f.IsValid() || f.Type() != t || !f.CanAddr() {
		return reflect.Value{}
	}
	return reflect.NewAt(t, unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// release unmaps the stack.
func (s *nativeStack) release() {
	if s != nil && s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
}
