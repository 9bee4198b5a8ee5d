package checkpoint

import "fmt"

// Flush pushes everything written so far (the manifest, right after
// NewWriter) through the compressor and buffers to the underlying writer,
// so a receiver streaming the archive can act on it before the rest
// exists.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	err := w.tw.Flush()
	if err == nil && w.bw != nil {
		err = w.bw.Flush()
	}
	if err == nil && w.zw != nil {
		err = w.zw.Flush()
	}
	if err != nil {
		w.err = fmt.Errorf("checkpoint: flush: %w", err)
	}
	return w.err
}
