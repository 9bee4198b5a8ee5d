package checkpoint

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/internal/statedir"
)

// File is an archive on its way to a file. It is written to a temporary
// file beside its path and takes the path's place only once complete and
// synced, so a crash or an error leaves whatever was at the path before.
type File struct {
	path string
	tmp  *os.File
}

// CreateFile starts the archive file path (made absolute). It fails at
// once if the directory cannot take the file, before anything is frozen.
func CreateFile(path string) (*File, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "cannot write %s: %v", path, err)
	}
	return &File{path: path, tmp: tmp}, nil
}

// Path is where the archive goes.
func (f *File) Path() string { return f.path }

// Write writes the archive of a dumped pod: its manifest am, the CRIU
// images in imagesDir and its writable layer upperDir, compressed with
// comp; then it makes the file durable and puts it at its path. It
// calls layerRead, if set, as soon as the writable layer has been read
// (the pod can no longer change the archive then), and stops if that
// fails. It returns the archive's size.
//
// Once ctx is done it stops at its next write, and at the latest before
// the file takes its path: an interrupted Write leaves no archive.
func (f *File) Write(ctx context.Context, comp Compression, am *Manifest, imagesDir, upperDir string, volumeDirs []string, layerRead func() error) (int64, error) {
	w, err := NewWriter(ctxWriter{ctx, f.tmp}, comp, am)
	if err != nil {
		return 0, err
	}
	if err := w.AddCRIUImages(imagesDir); err != nil {
		return 0, err
	}
	if err := w.AddUpperLayer(upperDir); err != nil {
		return 0, err
	}
	if err := w.AddVolumes(am.Volumes, volumeDirs); err != nil {
		return 0, err
	}
	if layerRead != nil {
		if err := layerRead(); err != nil {
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	failpoint.Hit(ctx, "checkpoint:written")
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := f.tmp.Sync(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.tmp.Name(), f.path); err != nil {
		return 0, err
	}
	return w.BytesWritten(), statedir.SyncDir(filepath.Dir(f.path))
}

// Close removes the temporary file, if the archive did not take its
// place.
func (f *File) Close() error {
	f.tmp.Close()
	if err := os.Remove(f.tmp.Name()); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// ctxWriter writes to w until ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
