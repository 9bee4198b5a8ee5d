package migrate

import "io"

// faultyWriter corrupts (flips a byte) or truncates (drops everything
// from) a stream at offset at: failpoints for the dock's verification.
type faultyWriter struct {
	w       io.Writer
	at, n   int64
	corrupt bool
}

func (f *faultyWriter) Write(p []byte) (int, error) {
	start := f.n
	f.n += int64(len(p))
	if f.n <= f.at || (!f.corrupt && start >= f.at) {
		if start >= f.at {
			return len(p), nil // truncated: swallowed
		}
		return f.w.Write(p)
	}
	q := append([]byte(nil), p...)
	if f.corrupt {
		if i := f.at - start; i >= 0 && i < int64(len(q)) {
			q[i] ^= 0x40
		}
	} else {
		q = q[:f.at-start]
	}
	if _, err := f.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
