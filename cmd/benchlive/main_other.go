//go:build !linux

// Command benchlive measures live delivery at scale on Linux (see main.go);
// its load generator reads thousands of sockets in one epoll loop and reads
// the server's memory from /proc, so it does not run elsewhere.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "benchlive: needs Linux (epoll, /proc)")
	os.Exit(2)
}
