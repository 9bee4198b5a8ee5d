package compare

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// addSizes adds what an image takes to m: image-bytes, the bytes it
// occupies as written (a directory's files, or one file), and
// image-zstd-bytes, the same compressed with zstd at its default level
// (a directory as a tar stream): what it would take to send or keep
// compressed. An image already compressed compresses little more.
func addSizes(m map[string]float64, image string) error {
	var counter countingWriter
	enc, err := zstd.NewWriter(&counter)
	if err != nil {
		return err
	}
	raw, err := writeImage(enc, image)
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size of %s: %w", image, err)
	}
	m["image-bytes"] = float64(raw)
	m["image-zstd-bytes"] = float64(counter)
	return nil
}

// writeImage writes image to w, a file as it is and a directory as a
// tar stream, and returns the bytes of its files.
func writeImage(w io.Writer, image string) (int64, error) {
	st, err := os.Stat(image)
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		f, err := os.Open(image)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return io.Copy(w, f)
	}
	tw := tar.NewWriter(w)
	var total int64
	err = filepath.WalkDir(image, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(image, p)
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o600, Size: info.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		total += n
		return err
	})
	if err != nil {
		return 0, err
	}
	return total, tw.Close()
}

// countingWriter counts what is written to it, and keeps none of it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
