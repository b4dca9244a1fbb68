package main

import "syscall"

// serverProcAttr puts a server in a process group of its own, so that a
// Ctrl-C at the terminal reaches the bench alone, which then stops the
// server in order and drops its database; and has the kernel kill the
// server should the bench itself die without stopping it.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
