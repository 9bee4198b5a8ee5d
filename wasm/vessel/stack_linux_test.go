package vessel

import (
	"context"
	"reflect"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero"
)

// recurseModule is (module (func (export "f") (param i32) (local i64 i64
// i64 i64) local.get 0 if local.get 0 i32.const 1 i32.sub call 0 end)):
// a function calling itself n deep.
var recurseModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x05, 0x01, 0x60, 0x01, 0x7f, 0x00, // type: (i32) -> ()
	0x03, 0x02, 0x01, 0x00, // func 0: type 0
	0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x00, // export "f" func 0
	0x0a, 0x12, 0x01, 0x10, 0x01, 0x04, 0x7e, // code: 4 locals i64
	0x20, 0x00, 0x04, 0x40, // local.get 0; if
	0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, // local.get 0; i32.const 1; i32.sub; call 0
	0x0b, 0x0b, // end; end
}

// TestNativeStack checks that, under wazero's compiler, a function gets
// the reserved stack and runs deep on it (wazero's call engine is
// reached by field names, which a new wazero could change), and that
// the interpreter's functions are left alone.
func TestNativeStack(t *testing.T) {
	ctx := context.Background()
	for _, interp := range []bool{false, true} {
		rc := wazero.NewRuntimeConfigInterpreter()
		if !interp {
			if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
				continue
			}
			rc = wazero.NewRuntimeConfigCompiler()
		}
		rt := wazero.NewRuntimeWithConfig(ctx, rc)
		mod, err := rt.Instantiate(ctx, recurseModule)
		if err != nil {
			t.Fatal(err)
		}
		f := mod.ExportedFunction("f")
		s := newNativeStack(f)
		if interp {
			if s != nil {
				t.Error("the interpreter's function got a native stack")
			}
		} else {
			if s == nil {
				t.Fatal("no native stack for a compiled function: has wazero's callEngine changed?")
			}
			if _, err := f.Call(ctx, 100_000); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Call(ctx, 10); err != nil {
				t.Fatal(err)
			}
			stack := field(reflect.ValueOf(f).Elem(), "stack", reflect.TypeOf([]byte(nil))).Bytes()
			if &stack[len(stack)-1] != &s.mem[len(s.mem)-1] {
				t.Error("wazero replaced the native stack")
			}
		}
		rt.Close(ctx)
		s.release()
	}
}
