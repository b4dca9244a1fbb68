//go:build unix

package ws

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// canWriteNoWait says that writeNoWait works here: writev on the socket.
const canWriteNoWait = true

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// writeNoWait writes as much of frames to the socket of rc as it takes at
// once, without waiting for it to take more, and returns what is left
// unwritten. headCut says that frames[0] is the tail of a frame begun; with
// cut, so is rest[0], which must be written before any other frame. It
// consumes frames (the slice, not the frames' bytes).
func writeNoWait(rc syscall.RawConn, frames [][]byte, headCut bool) (rest [][]byte, cut bool, err error) {
	var n int
	var werr error
	batch := frames[:min(len(frames), maxIovecs)]
	if err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), batch)
			if werr != unix.EINTR {
				return true // done or not, never wait
			}
		}
	}); err != nil {
		return frames, headCut, err
	}
	switch {
	case werr == unix.EAGAIN || werr == nil && n == 0:
		return frames, headCut, nil
	case werr != nil:
		return frames, headCut, werr
	}
	for len(frames) > 0 && n >= len(frames[0]) {
		n -= len(frames[0])
		frames = frames[1:]
	}
	if n > 0 {
		frames[0] = frames[0][n:]
		return frames, true, nil
	}
	return frames, false, nil
}
