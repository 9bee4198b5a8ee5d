package prepare

import (
	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// funcFacts is what the poll placement needs to know about one defined
// function, gathered in one walk over its body.
type funcFacts struct {
	// calls holds its direct calls (call, return_call), to functions by
	// index, imported ones included.
	calls []callSite
	// indirect holds its indirect calls (call_indirect,
	// return_call_indirect, call_ref, return_call_ref), by type index.
	indirect []callSite
	// entryReachesLoop is true when the first thing the body does,
	// whatever happens, is to reach the header of a loop: before that
	// loop there is nothing but straight-line code that neither calls
	// nor branches. The poll point at that loop header then serves as
	// the function's entry poll point.
	entryReachesLoop bool
}

// callSite is a call a function makes.
type callSite struct {
	// target is a function index for a direct call, a type index for
	// an indirect one.
	target uint32
	// inLoop is true when the call is inside the body of a loop: the poll
	// point at that loop's header is then passed before each execution
	// of the call.
	inLoop bool
}

// scanFunction gathers the facts of one function body, and reports every
// function whose reference it takes (ref.func) to refs.
func scanFunction(body []byte, refs func(uint32)) (funcFacts, error) {
	var (
		facts    funcFacts
		prologue = true // whether the walk is still in the straight-line code that starts the body
		frames   []bool // the enclosing blocks: whether each is a loop
		loops    int    // how many of them are
	)
	_, err := wasmcode.Walk(body, func(_ int, in *wasmcode.Instruction) error {
		switch in.Opcode {
		case wasmcode.OpCall, wasmcode.OpReturnCall:
			facts.calls = append(facts.calls, callSite{in.Imm[0].Index(), loops > 0})
		case wasmcode.OpCallIndirect, wasmcode.OpReturnCallIndirect,
			wasmcode.OpCallRef, wasmcode.OpReturnCallRef:
			facts.indirect = append(facts.indirect, callSite{in.Imm[0].Index(), loops > 0})
		case wasmcode.OpRefFunc:
			refs(in.Imm[0].Index())
		case wasmcode.OpBlock, wasmcode.OpIf, wasmcode.OpTry, wasmcode.OpTryTable:
			frames = append(frames, false)
		case wasmcode.OpLoop:
			frames = append(frames, true)
			loops++
		case wasmcode.OpEnd, wasmcode.OpDelegate:
			// The function's own end leaves frames empty.
			if n := len(frames); n > 0 {
				if frames[n-1] {
					loops--
				}
				frames = frames[:n-1]
			}
		}
		if prologue {
			switch {
			case in.Opcode == wasmcode.OpLoop:
				facts.entryReachesLoop = true
				prologue = false
			case !straightLine(in.Opcode):
				prologue = false
			}
		}
		return nil
	})
	return facts, err
}

// straightLine reports whether op, in a function's prologue, cannot keep
// control from reaching the next instruction other than by trapping: it
// neither branches nor calls nor ends a block. Only the instructions a
// compiler puts in a prologue need to be listed: anything else only
// makes the function get an entry poll point of its own.
func straightLine(op wasmcode.Opcode) bool {
	switch {
	case op == wasmcode.OpNop, op == wasmcode.OpBlock, op == wasmcode.OpDrop,
		op == wasmcode.OpSelect:
		return true
	case op >= wasmcode.OpLocalGet && op <= wasmcode.OpGlobalSet:
		return true
	case op >= 0x28 && op <= 0x3E: // loads and stores
		return true
	case op >= wasmcode.OpI32Const && op <= wasmcode.OpI64Extend32S: // constants, numeric
		return true
	}
	return false
}

// components returns, for each node of a directed graph given by its
// successor lists, the strongly connected component it belongs to, as an
// index into cyclic, which says whether the component has a cycle: more
// than one node, or an edge from its node to itself. A node lies on a
// cycle exactly when its component has one.
//
// It is Tarjan's algorithm, made iterative so that a call graph thousands
// of functions deep does not need a Go stack as deep: each node gets an
// index in depth-first order and a lowlink, the smallest index reachable
// from it through the depth-first subtree and one back edge; a node whose
// lowlink is its own index is the root of a component, which is then
// popped from the stack of visited, unassigned nodes.
func components(succ [][]int) (comp []int, cyclic []bool) {
	const unvisited = -1
	n := len(succ)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	comp = make([]int, n)
	for i := range index {
		index[i] = unvisited
	}
	var (
		stack []int // Tarjan's stack of nodes not yet in a component
		next  int   // next depth-first index
	)
	// frame is a node being visited and how far its successor list has
	// been walked: the explicit form of the recursive visit.
	type frame struct{ node, edge int }
	var calls []frame
	for root := 0; root < n; root++ {
		if index[root] != unvisited {
			continue
		}
		calls = append(calls, frame{node: root})
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			v := f.node
			if f.edge < len(succ[v]) {
				w := succ[v][f.edge]
				f.edge++
				switch {
				case index[w] == unvisited:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{node: w})
				case onStack[w]:
					low[v] = min(low[v], index[w])
				}
				continue
			}
			// All of v's successors are done: return from the visit.
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				parent := calls[len(calls)-1].node
				low[parent] = min(low[parent], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			// v is the root of a component: pop it.
			i := len(stack) - 1
			for stack[i] != v {
				i--
			}
			component := stack[i:]
			stack = stack[:i]
			for _, w := range component {
				onStack[w] = false
			}
			c := len(cyclic)
			hasCycle := len(component) > 1
			for _, w := range component {
				comp[w] = c
			}
			for _, w := range succ[v] {
				hasCycle = hasCycle || w == v
			}
			cyclic = append(cyclic, hasCycle)
		}
	}
	return comp, cyclic
}
