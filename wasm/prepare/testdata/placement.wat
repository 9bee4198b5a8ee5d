;; placement.wat has one function of each kind the poll placement tells
;; apart; the test checks where Instrument put poll points.
(module
  (type $ii (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $via_table $leaf)

  ;; Recursion outside any loop: an entry poll point.
  (func $selfrec (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (call $selfrec (i32.sub (local.get 0) (i32.const 1))))))

  ;; Recursion inside a loop (clang's fib): the loop's poll point is
  ;; passed before each recursive call, no entry poll point.
  (func $looprec (param i32) (result i32) (local i32)
    (if (i32.lt_u (local.get 0) (i32.const 2)) (then (return (local.get 0))))
    (loop $l
      (local.set 1 (i32.add (local.get 1) (call $looprec (i32.sub (local.get 0) (i32.const 1)))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 2)))
      (br_if $l (i32.gt_u (local.get 0) (i32.const 1))))
    (i32.add (local.get 0) (local.get 1)))

  ;; Mutual recursion: both get an entry poll point.
  (func $even (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 1))
      (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
  (func $odd (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (call $even (i32.sub (local.get 0) (i32.const 1))))))

  ;; Recursion through the table only.
  (func $via_table (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (call_indirect (type $ii) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0)))))

  ;; Calls the table, but nothing in the table calls it back.
  (func $caller (param i32) (result i32)
    (call_indirect (type $ii) (local.get 0) (i32.const 0)))

  ;; An indirect call of a type no function in the table has.
  (func $other_type (param i64) (result i64)
    (call_indirect (param i64) (result i64) (local.get 0) (i32.const 1)))

  (func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))

  ;; Recursive, but its body first reaches a loop header (Go's shape):
  ;; the loop's poll point is its entry poll point.
  (func $prologue_loop (param i32) (result i32) (local i32)
    local.get 0
    local.set 1
    block
      loop
        local.get 1
        i32.eqz
        br_if 1
        local.get 1
        i32.const 1
        i32.sub
        call $prologue_loop
        drop
      end
    end
    local.get 1)

  ;; A loop that calls, before anything else, a function with an entry
  ;; poll point: no poll point of its own.
  (func $loop_calls_polled (param i32) (local i32)
    (loop $l
      (drop (call $selfrec (local.get 1)))
      (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 1) (local.get 0)))))

  ;; Two plain loops, one nested.
  (func $loops (param i32) (result i32) (local i32)
    (loop $a
      (loop $b
        (local.set 1 (i32.add (local.get 1) (i32.const 1)))
        (br_if $b (i32.lt_u (local.get 1) (local.get 0))))
      (br_if $a (i32.lt_u (local.get 1) (i32.const 10))))
    (local.get 1))

  (export "selfrec" (func $selfrec))
  (export "looprec" (func $looprec))
  (export "even" (func $even))
  (export "via_table" (func $via_table))
  (export "caller" (func $caller))
  (export "prologue_loop" (func $prologue_loop))
  (export "loop_calls_polled" (func $loop_calls_polled))
  (export "loops" (func $loops)))
