//go:build !linux

package main

import "syscall"

// serverProcAttr is nil off Linux: a server shares the bench's process
// group and outlives a bench that dies without stopping it.
func serverProcAttr() *syscall.SysProcAttr { return nil }
