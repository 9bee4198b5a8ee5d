//go:build !unix

package vesselpod

import "errors"

func syscallMkfifo(string) error { return errors.New("no FIFOs") }
