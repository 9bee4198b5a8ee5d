// Command hello is a static test payload for pods built from an image
// directory: it prints its arguments and hostname, writes a file in /tmp,
// and stays alive until SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	host, _ := os.Hostname()
	fmt.Printf("hello %s hostname=%s\n", strings.Join(os.Args[1:], " "), host)
	os.WriteFile("/tmp/hello", []byte("hi\n"), 0o644)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
}
