package checkpoint

import "hash"

// CopyHashing copies size bytes, chunk by chunk, from read to write while
// h hashes them on another goroutine: each chunk is handed to the hasher
// and written at the same time (both only read it), and its buffer is
// reused once the hasher is done with it. On two cores this hides the
// SHA-256 cost of large entries behind the copy. read must fill the
// buffer it is given (or fail); bufs are the chunk buffers, at least one.
// Archive writer and reader share it.
func CopyHashing(bufs [][]byte, size int64, h hash.Hash, read func([]byte) (int, error), write func([]byte) error) error {
	toHash := make(chan []byte, len(bufs))
	free := make(chan []byte, len(bufs))
	for _, b := range bufs {
		free <- b
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var err error
	for left := size; left > 0; {
		buf := <-free
		var n int
		if n, err = read(buf[:min(left, int64(len(buf)))]); err != nil {
			break
		}
		toHash <- buf[:n]
		if err = write(buf[:n]); err != nil {
			break
		}
		left -= int64(n)
	}
	close(toHash)
	<-done
	return err
}
