// Command guest is the WASI test guest of package wasi, built for
// GOOS=wasip1 GOARCH=wasm by the tests. Its first argument picks what it
// does; it prints what it sees on standard output.
package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:wasmimport test pause
func pause()

//go:wasmimport wasi_snapshot_preview1 clock_time_get
func clockTimeGet(id uint32, precision uint64, ts *uint64) uint32

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: guest diff|pause|resume|confine ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "diff":
		diff()
	case "pause":
		pauseMode()
	case "resume":
		resume(os.Args[2:])
	case "confine":
		confine()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func check(what string, err error) {
	if err != nil {
		fmt.Printf("%s: error: %v\n", what, err)
	}
}

// show prints what and err, an expected error.
func show(what string, err error) {
	fmt.Printf("%s: %v\n", what, err)
}

func monotonic() uint64 {
	var ts uint64
	if e := clockTimeGet(1, 1, &ts); e != 0 {
		panic(fmt.Sprintf("clock_time_get: errno %d", e))
	}
	return ts
}

// diff exercises the interface for the differential test: everything it
// prints, its exit code and the files it leaves must be the same under
// any correct WASI.
func diff() {
	fmt.Println("args:", strings.Join(os.Args, "|"))
	env := os.Environ()
	slices.Sort(env)
	fmt.Println("env:", strings.Join(env, "|"))
	in, err := io.ReadAll(os.Stdin)
	check("stdin", err)
	fmt.Printf("stdin: %q\n", in)

	// Files: create, write, read, seek, pread, pwrite, truncate.
	check("write a", os.WriteFile("/a.txt", []byte("hello world\n"), 0o644))
	f, err := os.OpenFile("/a.txt", os.O_RDWR, 0)
	check("open a", err)
	buf := make([]byte, 5)
	_, err = f.Seek(6, io.SeekStart)
	check("seek", err)
	_, err = io.ReadFull(f, buf)
	check("read", err)
	fmt.Printf("read at 6: %q\n", buf)
	pos, err := f.Seek(-3, io.SeekEnd)
	fmt.Println("seek end-3:", pos, err)
	_, err = f.Write([]byte("XYZ!"))
	check("write", err)
	_, err = f.WriteAt([]byte("J"), 0)
	check("pwrite", err)
	n, err := f.ReadAt(buf, 1)
	fmt.Printf("pread: %d %q %v\n", n, buf[:n], err)
	pos, _ = f.Seek(0, io.SeekCurrent)
	fmt.Println("position:", pos)
	check("truncate", f.Truncate(8))
	fi, err := f.Stat()
	check("fstat", err)
	fmt.Println("size after truncate:", fi.Size(), fi.Mode().IsRegular())
	n, err = f.Read(buf)
	fmt.Printf("read past end: %d %v\n", n, err)
	check("close", f.Close())
	data, err := os.ReadFile("/a.txt")
	fmt.Printf("a.txt: %q %v\n", data, err)

	// A bigger file, written and read in pieces.
	big := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	check("write big", os.WriteFile("/big.bin", big, 0o600))
	data, err = os.ReadFile("/big.bin")
	fmt.Println("big:", len(data), bytes.Equal(data, big), err)

	// Append.
	af, err := os.OpenFile("/log.txt", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	check("open log", err)
	af.Write([]byte("one\n"))
	af.Close()
	af, err = os.OpenFile("/log.txt", os.O_WRONLY|os.O_APPEND, 0)
	check("reopen log", err)
	af.Write([]byte("two\n"))
	af.Close()
	data, _ = os.ReadFile("/log.txt")
	fmt.Printf("log: %q\n", data)

	// Directories, rename, unlink, symlinks, hard links.
	check("mkdir d", os.Mkdir("/d", 0o755))
	check("mkdirall", os.MkdirAll("/d/e/f", 0o755))
	check("write b", os.WriteFile("/d/b.txt", []byte("bee"), 0o600))
	check("write c", os.WriteFile("/d/c.txt", []byte("sea"), 0o600))
	check("rename a", os.Rename("/a.txt", "/d/a2.txt"))
	check("symlink", os.Symlink("a2.txt", "/d/link"))
	target, err := os.Readlink("/d/link")
	fmt.Println("readlink:", target, err)
	data, err = os.ReadFile("/d/link")
	fmt.Printf("through link: %q %v\n", data, err)
	lfi, err := os.Lstat("/d/link")
	check("lstat", err)
	sfi, err := os.Stat("/d/link")
	check("stat", err)
	fmt.Println("lstat symlink:", lfi.Mode()&os.ModeSymlink != 0, "stat regular:", sfi.Mode().IsRegular(), sfi.Size())
	check("link", os.Link("/d/b.txt", "/d/b-hard.txt"))
	data, err = os.ReadFile("/d/b-hard.txt")
	fmt.Printf("hard link: %q %v\n", data, err)
	check("remove hard link", os.Remove("/d/b-hard.txt"))
	check("unlink c", os.Remove("/d/c.txt"))
	check("rmdir f", os.Remove("/d/e/f"))
	check("rename dir", os.Rename("/d/e", "/d/e2"))
	check("mkdir empty", os.Mkdir("/empty", 0o755))
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	check("chtimes", os.Chtimes("/d/b.txt", mtime, mtime))
	bfi, err := os.Stat("/d/b.txt")
	fmt.Println("mtime:", bfi.ModTime().UTC(), err)
	entries, err := os.ReadDir("/d")
	check("readdir", err)
	for _, e := range entries {
		fmt.Println("entry:", e.Name(), e.IsDir(), e.Type()&os.ModeSymlink != 0)
	}

	// Many entries with long names: fd_readdir needs several calls.
	check("mkdir many", os.Mkdir("/many", 0o755))
	for i := range 150 {
		name := fmt.Sprintf("/many/%03d-%s", i, strings.Repeat("x", i%40))
		check("create", os.WriteFile(name, nil, 0o600))
	}
	entries, err = os.ReadDir("/many")
	fmt.Println("many:", len(entries), err, entries[0].Name(), entries[149].Name())
	df, err := os.Open("/many")
	check("open many", err)
	names, err := df.Readdirnames(7)
	fmt.Println("first 7:", len(names), err)
	rest, err := df.Readdirnames(-1)
	fmt.Println("rest:", len(rest), err)
	names = append(names, rest...)
	slices.Sort(names)
	fmt.Println("all listed:", len(slices.Compact(names)) == 150)
	df.Close()

	// Errors.
	_, err = os.Open("/nonexistent")
	show("open nonexistent", err)
	show("mkdir existing", os.Mkdir("/d", 0o755))
	show("rmdir non-empty", syscall.Rmdir("/d"))
	show("unlink dir", syscall.Unlink("/d"))
	show("rmdir file", syscall.Rmdir("/d/b.txt"))
	_, err = os.ReadFile("/d")
	show("read dir", err)
	_, err = os.Open("/d/b.txt/x")
	show("open below file", err)
	_, err = os.OpenFile("/d/b.txt", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	show("create excl existing", err)
	show("rename missing", os.Rename("/nope", "/nope2"))

	// Clocks and randomness.
	t0 := time.Now()
	m0 := monotonic()
	time.Sleep(20 * time.Millisecond)
	m1 := monotonic()
	fmt.Println("monotonic increasing:", m1 > m0, "slept:", time.Since(t0) >= 20*time.Millisecond)
	var r [32]byte
	_, err = rand.Read(r[:])
	fmt.Println("random non-zero:", r != [32]byte{}, err)
	fmt.Fprintln(os.Stderr, "to stderr")
	os.Exit(7)
}

// pauseMode opens files and pauses in the host, which takes the state.
func pauseMode() {
	fds := make(map[string]uintptr)
	keep, err := os.OpenFile("/keep.txt", os.O_RDWR|os.O_CREATE, 0o600)
	check("open keep", err)
	keep.Write([]byte("0123456789abcdef"))
	keep.Seek(5, io.SeekStart)
	fds["keep"] = keep.Fd()

	gap, err := os.Create("/gap.txt")
	check("create gap", err)

	check("mkdir sub", os.Mkdir("/sub", 0o755))
	check("write inner", os.WriteFile("/sub/inner.txt", []byte("inner contents"), 0o600))
	inner, err := os.Open("/sub/inner.txt")
	check("open inner", err)
	io.ReadFull(inner, make([]byte, 3))
	fds["inner"] = inner.Fd()

	log, err := os.OpenFile("/log.txt", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	check("open log", err)
	log.Write([]byte("line1\n"))
	fds["log"] = log.Fd()

	dir, err := os.Open("/sub")
	check("open dir", err)
	fds["dir"] = dir.Fd()

	data, err := os.Create("/data/moved.txt")
	check("create in data", err)
	data.Write([]byte("in the second preopen"))
	fds["data"] = data.Fd()

	renamed, err := os.Create("/before-rename.txt")
	check("create renamed", err)
	renamed.Write([]byte("renamed while open"))
	check("rename", os.Rename("/before-rename.txt", "/sub/after-rename.txt"))
	fds["renamed"] = renamed.Fd()

	check("symlink", os.Symlink("keep.txt", "/lnk"))
	check("chtimes", os.Chtimes("/sub/inner.txt", time.Unix(1e9, 123456789), time.Unix(1e9, 123456789)))
	fds["gap"] = gap.Fd()
	check("close gap", gap.Close())

	var keys []string
	for k := range fds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("fd %s %d\n", k, fds[k])
	}
	fmt.Println("monotonic", monotonic())
	pause()
	fmt.Println("not reached")
}

// resume runs after a restore: args are name=fd pairs and the monotonic
// clock at the snapshot.
func resume(args []string) {
	fds := make(map[string]*os.File)
	var clock uint64
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(err)
		}
		if k == "clock" {
			clock = n
			continue
		}
		fds[k] = os.NewFile(uintptr(n), k)
	}
	fmt.Println("monotonic not before snapshot:", monotonic() >= clock)
	rest, err := io.ReadAll(fds["keep"])
	fmt.Printf("keep from offset: %q %v\n", rest, err)
	rest, err = io.ReadAll(fds["inner"])
	fmt.Printf("inner from offset: %q %v\n", rest, err)
	_, err = fds["log"].Write([]byte("line2\n"))
	check("append log", err)
	_, err = fds["data"].Write([]byte(", continued"))
	check("write data", err)
	_, err = fds["renamed"].Write([]byte(", still"))
	check("write renamed", err)
	names, err := fds["dir"].Readdirnames(-1)
	slices.Sort(names)
	fmt.Println("dir:", names, err)
	f, err := os.Create("/new.txt")
	check("create new", err)
	fmt.Println("next fd:", f.Fd())
	for _, name := range []string{"/log.txt", "/data/moved.txt", "/sub/after-rename.txt", "/lnk"} {
		b, err := os.ReadFile(name)
		fmt.Printf("%s: %q %v\n", name, b, err)
	}
	fi, err := os.Stat("/sub/inner.txt")
	fmt.Println("inner mtime:", fi.ModTime().UnixNano(), err)
}

// confine tries to leave the preopen every way it can.
func confine() {
	try := func(what string, err error) {
		var en syscall.Errno
		if errors.As(err, &en) {
			fmt.Printf("%s: errno %d\n", what, uint32(en))
		} else {
			fmt.Printf("%s: %v\n", what, err)
		}
	}
	read := func(name string) error {
		b, err := os.ReadFile(name)
		if err == nil {
			fmt.Printf("content of %s: %q\n", name, b)
		}
		return err
	}
	openat := func(dir int, name string) error {
		fd, err := syscall.Openat(dir, name, syscall.O_RDONLY, 0)
		if err == nil {
			b := make([]byte, 100)
			n, _ := syscall.Read(fd, b)
			fmt.Printf("opened %s: %q\n", name, b[:n])
			syscall.Close(fd)
		}
		return err
	}
	try("read via absolute symlink", read("/abs/secret"))
	try("read via relative escaping symlink", read("/rel"))
	try("read via inside symlink", read("/ok"))
	try("openat ../", openat(3, "../outside/secret"))
	try("openat absolute", openat(3, "/etc/passwd"))
	try("openat sub/../../", openat(3, "sub/../../outside/secret"))
	try("openat sub/../inside", openat(3, "sub/../inside.txt"))
	sub, err := syscall.Openat(3, "sub", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	try("open sub", err)
	try("openat from sub ../../", openat(sub, "../../outside/secret"))
	try("openat from sub ../inside", openat(sub, "../inside.txt"))
	try("symlink to /", os.Symlink("/", "/root-link"))
	try("read through guest symlink to /", read("/root-link/etc/passwd"))
	try("symlink to ..", os.Symlink("..", "/up-link"))
	try("read through guest symlink to ..", read("/up-link/outside/secret"))
	_, err = os.Stat("/abs")
	try("stat abs", err)
	_, err = os.Lstat("/abs")
	try("lstat abs", err)
	try("mkdir through escaping symlink", os.Mkdir("/abs/new", 0o755))
	try("create through escaping symlink", os.WriteFile("/abs/new.txt", []byte("x"), 0o600))
	try("rename into escape", syscall.Rename("/inside.txt", "/abs/stolen.txt"))
	try("link out", os.Link("/inside.txt", "/abs/linked.txt"))
	try("remove through escape", os.Remove("/abs/secret"))
}
