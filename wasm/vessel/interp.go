package vessel

import _ "unsafe" // for go:linkname

// InterpreterMaxCallDepth is how deeply guests may nest calls under
// wazero's interpreter, the only engine on ISAs without wazero's compiler
// (everything but amd64 and arm64).
//
// The interpreter's own ceiling is 2000 frames, while the compiler allows
// some 400 MB of stack: a program recursing 50,000 deep runs on an amd64
// dock and traps on an s390x one. A vessel must run the same everywhere
// it can migrate to, so podctl raises the interpreter's ceiling. Each
// interpreted frame costs about 7.5 KiB of Go stack, and Go's stack limit
// (1 GiB) allows some 130,000; 100,000 leaves room for the rest.
const InterpreterMaxCallDepth = 100_000

// interpreterCallStackCeiling is wazero's interpreter's limit. wazero has
// no option for it. Were the variable renamed, this declaration would
// quietly define a new one: TestDeepRecursionInterpreter checks the
// effect.
//
//go:linkname interpreterCallStackCeiling github.com/tetratelabs/wazero/internal/engine/interpreter.callStackCeiling
var interpreterCallStackCeiling int

func init() { interpreterCallStackCeiling = InterpreterMaxCallDepth }
