package desktop

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod"
)

// Execer runs a command inside a running pod and returns its exit
// status (the native pod's handle).
type Execer interface {
	Exec(ctx context.Context, o pod.ExecOptions) (int, error)
}

// Screenshot writes, as a PNG, what the desktop of the pod that e runs
// commands in shows: its X server's root window, read with xwd inside
// the pod.
func Screenshot(ctx context.Context, e Execer, w io.Writer) error {
	var dump, stderr bytes.Buffer
	code, err := e.Exec(ctx, pod.ExecOptions{
		Command: []string{"xwd", "-root", "-silent", "-display", Display},
		Stdout:  &dump, Stderr: &stderr,
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return errdefs.New(errdefs.NotRunning, "screenshot: xwd in the pod exited %d: %s", code, strings.TrimSpace(stderr.String()))
	}
	img, err := DecodeXWD(&dump)
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return png.Encode(w, img)
}
