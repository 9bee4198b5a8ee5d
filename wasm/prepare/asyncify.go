package prepare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// OptimizeLevel is the wasm-opt optimization level Asyncify runs after the
// transformation. On the test workloads -O3 and -O4 were no faster than
// -O2 (within noise for C, 3 % slower for Go) and take longer; optimizing
// before the transformation as well changed nothing.
const OptimizeLevel = "-O2"

// asyncifyExports returns the functions Asyncify adds to a module and
// exports, with which the host unwinds and rewinds the guest's call stack.
func asyncifyExports() []string {
	return []string{
		"asyncify_start_unwind",
		"asyncify_stop_unwind",
		"asyncify_start_rewind",
		"asyncify_stop_rewind",
		"asyncify_get_state",
	}
}

// Asyncify runs Binaryen's Asyncify transformation on an instrumented
// module (see Instrument), with the poll function and poll_oneoff as the
// only imports that unwind, splits each function it instrumented into a
// fast body that only runs forward and a twin that rewinds (see
// splitRewind), and optimizes the result. wasmOpt is the path of
// wasm-opt, or "" for the one on PATH.
//
// wasm-opt is told to enable exactly the WebAssembly features the module
// uses (and mutable-globals, for the global exports), so that the
// optimizer does not introduce instructions the module did not already
// need, and to keep function names. The result is checked to export the
// Asyncify functions, the flag and every global export of the
// instrumented module.
func Asyncify(ctx context.Context, wasmOpt string, instrumented []byte) ([]byte, error) {
	out, err := asyncify(ctx, wasmOpt, instrumented)
	if err != nil {
		return nil, fmt.Errorf("asyncify: %w", err)
	}
	return out, nil
}

// asyncify is Asyncify without the context on errors.
func asyncify(ctx context.Context, wasmOpt string, instrumented []byte) ([]byte, error) {
	if wasmOpt == "" {
		wasmOpt = "wasm-opt"
	}
	m, err := binary.DecodeModule(instrumented, decodeFeatures)
	if err != nil {
		return nil, fmt.Errorf("decode instrumented module: %w", err)
	}
	if !hasImport(m, PollModule, PollFunc) {
		return nil, errors.New("module is not instrumented: it does not import " + PollModule + "." + PollFunc)
	}
	feats, err := moduleFeatures(instrumented, m)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "podctl-asyncify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	asyncified, err := asyncifyOnly(ctx, wasmOpt, dir, instrumented, feats)
	if err != nil {
		return nil, err
	}
	split, err := splitRewind(asyncified)
	switch {
	case errors.Is(err, errNoSplit):
		split = asyncified // correct, only slower
	case err != nil:
		return nil, fmt.Errorf("split: %w", err)
	}
	splitModule, err := binary.DecodeModule(split, decodeFeatures)
	if err != nil {
		return nil, fmt.Errorf("decode split module: %w", err)
	}
	if split, err = exportWait(split, splitModule); err != nil {
		return nil, err
	}
	if feats, err = moduleFeatures(split, splitModule); err != nil {
		return nil, err
	}
	prepared, err := runWasmOpt(ctx, wasmOpt, dir, split, feats, OptimizeLevel)
	if err != nil {
		return nil, err
	}
	if err := checkPrepared(m, prepared); err != nil {
		return nil, err
	}
	return prepared, nil
}

// exportWait returns module (decoded: m) with its import of poll_oneoff,
// if it has one, exported as WaitExport.
func exportWait(module []byte, m *wasm.Module) ([]byte, error) {
	f := uint32(0)
	for _, imp := range m.ImportSection {
		if imp.Type != wasm.ExternTypeFunc {
			continue
		}
		if imp.Module == WaitModule && imp.Name == WaitFunc {
			sections, err := splitSections(module)
			if err != nil {
				return nil, err
			}
			export := appendU32(append(appendName(nil, WaitExport), wasm.ExternTypeFunc), f)
			exports := appendVector(findSection(sections, wasm.SectionIDExport), uint32(len(m.ExportSection)), export)
			return joinSections(setSection(sections, wasm.SectionIDExport, exports)), nil
		}
		f++
	}
	return module, nil
}

// asyncifyOnly runs Asyncify, with the optimizations it makes on its own
// code but not yet the optimizer's passes: splitRewind looks for the
// unwinding checks in the form Asyncify writes them.
func asyncifyOnly(ctx context.Context, wasmOpt, dir string, instrumented []byte, feats []string) ([]byte, error) {
	return runWasmOpt(ctx, wasmOpt, dir, instrumented, feats,
		"--asyncify",
		"--pass-arg=asyncify-imports@"+PollModule+"."+PollFunc+","+WaitModule+"."+WaitFunc,
		"--optimize-level=2")
}

// runWasmOpt runs wasm-opt on module with the given passes, enabling the
// features feats (and mutable-globals, for the global exports) and
// keeping the "name" section, and returns its output. dir holds its
// files.
func runWasmOpt(ctx context.Context, wasmOpt, dir string, module []byte, feats []string, passes ...string) ([]byte, error) {
	in, out := filepath.Join(dir, "in.wasm"), filepath.Join(dir, "out.wasm")
	if err := os.WriteFile(in, module, 0o600); err != nil {
		return nil, err
	}
	args := []string{in, "-o", out, "--enable-mutable-globals"}
	for _, f := range feats {
		args = append(args, "--enable-"+f)
	}
	args = append(args, passes...)
	// Keep the "name" section: wazero names the functions of a guest's
	// stack trace with it.
	args = append(args, "--debuginfo")
	cmd := exec.CommandContext(ctx, wasmOpt, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4096 {
			msg = msg[:4096] + "..."
		}
		return nil, fmt.Errorf("%s %s: %w: %s", wasmOpt, strings.Join(args[3:], " "), err, msg)
	}
	return os.ReadFile(out)
}

// hasImport reports whether a module imports module.name.
func hasImport(m *wasm.Module, module, name string) bool {
	for _, imp := range m.ImportSection {
		if imp.Module == module && imp.Name == name {
			return true
		}
	}
	return false
}

// checkPrepared checks that wasm-opt kept what the host needs: the
// Asyncify functions, and the global exports of the instrumented module.
func checkPrepared(instrumented *wasm.Module, prepared []byte) error {
	m, err := binary.DecodeModule(prepared, decodeFeatures)
	if err != nil {
		return fmt.Errorf("decode prepared module: %w", err)
	}
	exports := make(map[string]wasm.ExternType, len(m.ExportSection))
	for _, e := range m.ExportSection {
		exports[e.Name] = e.Type
	}
	for _, name := range asyncifyExports() {
		if exports[name] != wasm.ExternTypeFunc {
			return fmt.Errorf("prepared module does not export function %s", name)
		}
	}
	for _, e := range instrumented.ExportSection {
		if e.Name != FlagExport && !strings.HasPrefix(e.Name, GlobalExportPrefix) {
			continue
		}
		if t, ok := exports[e.Name]; !ok || t != wasm.ExternTypeGlobal {
			return fmt.Errorf("prepared module does not export global %s", e.Name)
		}
	}
	return nil
}

// targetFeature returns the wasm-opt name of a feature named in a
// "target_features" custom section (LLVM's names), or "".
func targetFeature(name string) string {
	switch name {
	case "atomics":
		return "threads"
	case "nontrapping-fptoint":
		return "nontrapping-float-to-int"
	case "simd128":
		return "simd"
	case "bulk-memory", "exception-handling", "extended-const", "memory64",
		"multivalue", "mutable-globals", "reference-types", "relaxed-simd",
		"sign-ext", "tail-call":
		return name
	}
	return ""
}

// moduleFeatures returns the wasm-opt names of the WebAssembly features a
// module uses beyond the MVP, in order: those its "target_features"
// section declares, and those its sections and instructions need.
// Go does not write a target_features section, so looking at the code is
// the only way to know that a Go module needs sign-ext,
// nontrapping-float-to-int and bulk-memory.
func moduleFeatures(module []byte, m *wasm.Module) ([]string, error) {
	set := make(map[string]bool)
	sections, err := splitSections(module)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		switch s.id {
		case wasm.SectionIDCustom:
			name, contents, err := s.customName()
			if err == nil && name == "target_features" {
				readTargetFeatures(contents, set)
			}
		case wasm.SectionIDDataCount:
			set["bulk-memory"] = true
		case sectionIDTag:
			set["exception-handling"] = true
		}
	}
	for _, t := range m.TypeSection {
		if len(t.Results) > 1 {
			set["multivalue"] = true
		}
	}
	tables := len(m.TableSection)
	for _, imp := range m.ImportSection {
		if imp.Type == wasm.ExternTypeTable {
			tables++
		}
	}
	if tables > 1 {
		set["reference-types"] = true
	}
	for _, e := range m.ElementSection {
		if e.Mode != wasm.ElementModeActive || e.TableIndex != 0 || e.Type != wasm.RefTypeFuncref {
			set["bulk-memory"] = true
			set["reference-types"] = true
		}
	}
	for _, d := range m.DataSection {
		if d.OffsetExpression == nil { // passive
			set["bulk-memory"] = true
		}
	}
	if p := findSection(sections, wasm.SectionIDCode); p != nil {
		codes, err := splitCode(p)
		if err != nil {
			return nil, fmt.Errorf("code section: %w", err)
		}
		for i, c := range codes {
			if _, err := wasmcode.Walk(c.body, func(_ int, in *wasmcode.Instruction) error {
				if f := instructionFeature(in); f != "" {
					set[f] = true
				}
				return nil
			}); err != nil {
				return nil, fmt.Errorf("function body %d: %w", i, err)
			}
		}
	}
	delete(set, "mutable-globals") // always enabled
	feats := make([]string, 0, len(set))
	for f := range set {
		feats = append(feats, f)
	}
	sort.Strings(feats)
	return feats, nil
}

// readTargetFeatures adds the features a "target_features" section says
// the module uses ("+") or requires ("=") to set. A malformed section is
// ignored: the instructions say what is needed anyway.
func readTargetFeatures(contents []byte, set map[string]bool) {
	r := reader{b: contents}
	n, err := r.count()
	if err != nil {
		return
	}
	for i := uint32(0); i < n; i++ {
		prefix, err := r.byte()
		if err != nil {
			return
		}
		name, err := r.name()
		if err != nil {
			return
		}
		if f := targetFeature(name); f != "" && (prefix == '+' || prefix == '=') {
			set[f] = true
		}
	}
}

// instructionFeature returns the wasm-opt name of the feature beyond the
// MVP an instruction needs, or "".
func instructionFeature(in *wasmcode.Instruction) string {
	op := in.Opcode
	switch op.Prefix() {
	case wasmcode.PrefixMisc:
		switch {
		case op <= wasmcode.OpI64TruncSatF64U:
			return "nontrapping-float-to-int"
		case op == wasmcode.OpTableGrow, op == wasmcode.OpTableSize, op == wasmcode.OpTableFill:
			return "reference-types"
		}
		return "bulk-memory"
	case wasmcode.PrefixVector:
		if op.Sub() >= 0x100 {
			return "relaxed-simd"
		}
		return "simd"
	case wasmcode.PrefixAtomic:
		return "threads"
	}
	switch {
	case op >= wasmcode.OpI32Extend8S && op <= wasmcode.OpI64Extend32S:
		return "sign-ext"
	case op == wasmcode.OpReturnCall, op == wasmcode.OpReturnCallIndirect:
		return "tail-call"
	case op == wasmcode.OpCallRef, op == wasmcode.OpReturnCallRef,
		op == wasmcode.OpRefAsNonNull, op == wasmcode.OpBrOnNull, op == wasmcode.OpBrOnNonNull:
		return "typed-function-references"
	case op == wasmcode.OpTry, op == wasmcode.OpCatch, op == wasmcode.OpThrow,
		op == wasmcode.OpRethrow, op == wasmcode.OpThrowRef, op == wasmcode.OpDelegate,
		op == wasmcode.OpCatchAll, op == wasmcode.OpTryTable:
		return "exception-handling"
	case op == wasmcode.OpTableGet, op == wasmcode.OpTableSet, op == wasmcode.OpSelectTyped,
		op == wasmcode.OpRefNull, op == wasmcode.OpRefIsNull, op == wasmcode.OpRefFunc:
		return "reference-types"
	case op == wasmcode.OpCallIndirect && in.Imm[1].Value != 0:
		return "reference-types"
	case (op == wasmcode.OpBlock || op == wasmcode.OpLoop || op == wasmcode.OpIf) && in.Imm[0].Signed() >= 0:
		return "multivalue" // a block type given by type index
	}
	return ""
}
