;; env.wat provides the imports of renumber.wat.
(module
  (func (export "host") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 10000000)))
  (global (export "base") i32 (i32.const 5)))
