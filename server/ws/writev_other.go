//go:build !unix

package ws

import (
	"errors"
	"syscall"
)

// canWriteNoWait says that writeNoWait does not work here (no writev): a
// connection's writer writes its whole queue instead, which is correct,
// only slower for a burst to thousands of sockets.
const canWriteNoWait = false

// writeNoWait is never called here: connections keep no raw socket.
func writeNoWait(rc syscall.RawConn, frames [][]byte, headCut bool) (rest [][]byte, cut bool, err error) {
	return frames, headCut, errors.ErrUnsupported
}
