;; loops.wat has loops of every shape the outlined poll points must keep
;; working: nested, left and continued from inside other loops, through
;; br, br_if and br_table, with a result, with parameters (which keep an
;; inline poll point), and a branch out to the function itself. Each
;; exported function returns a checksum of what it did.
(module
  (func (export "nested") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $s i32)
    block $out
      loop $outer
        local.get $i
        local.get $n
        i32.ge_u
        br_if $out
        i32.const 0
        local.set $j
        block $inner_done
          loop $inner
            local.get $j
            i32.const 7
            i32.eq
            br_if $inner_done
            local.get $s
            local.get $i
            local.get $j
            i32.mul
            i32.add
            local.set $s
            local.get $i
            i32.const 1
            i32.add
            local.set $i
            local.get $j
            i32.const 1
            i32.add
            local.tee $j
            local.get $i
            i32.gt_u
            br_if $outer ;; continue the outer loop from the inner one
            local.get $s
            i32.const 1000000
            i32.gt_u
            br_if $out ;; leave both
            br $inner
          end
        end
        br $outer
      end
    end
    local.get $s)

  (func (export "table") (param $n i32) (result i32) (local $i i32) (local $s i32)
    block $exit
      loop $l
        block $b2
          block $b1
            block $b0
              local.get $i
              local.get $n
              i32.ge_u
              br_if $exit
              local.get $i
              i32.const 1
              i32.add
              local.tee $i
              i32.const 4
              i32.rem_u
              br_table $b0 $b1 $b2 $l
            end
            local.get $s
            i32.const 3
            i32.add
            local.set $s
            br $l
          end
          local.get $s
          i32.const 5
          i32.mul
          i32.const 65535
          i32.and
          local.set $s
          br $l
        end
        local.get $s
        i32.const 7
        i32.xor
        local.set $s
        br $l
      end
    end
    local.get $s)

  (func (export "result") (param $n i32) (result i32) (local $i i32)
    loop $l (result i32)
      local.get $i
      i32.const 1
      i32.add
      local.tee $i
      local.get $n
      i32.lt_u
      br_if $l
      local.get $i
      i32.const 100
      i32.mul
    end)

  (func (export "params") (param $n i32) (result i32) (local $a i32) (local $c i32)
    i32.const 0
    local.get $n
    loop $l (param i32 i32) (result i32)
      local.set $c
      local.set $a
      local.get $a
      local.get $c
      i32.add
      local.get $c
      i32.const 1
      i32.sub
      local.get $c
      i32.const 1
      i32.gt_u
      br_if $l
      drop
    end)

  (func (export "return") (param $n i32) (result i32) (local $i i32)
    loop $l
      local.get $i
      i32.const 1
      i32.add
      local.tee $i
      i32.const 3
      i32.mul
      local.get $i
      local.get $n
      i32.ge_u
      br_if 1 ;; the function's own label: returns i*3
      drop
      local.get $i
      i32.const 2
      i32.rem_u
      if
        br $l
      else
        local.get $i
        i32.const 1
        i32.add
        local.set $i
        br $l
      end
    end
    unreachable))
