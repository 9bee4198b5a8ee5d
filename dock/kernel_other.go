//go:build !unix

package dock

// kernelRelease is empty where there is no uname.
func kernelRelease() string { return "" }
