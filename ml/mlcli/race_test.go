//go:build race

package mlcli

// raceEnabled is true under the race detector, which slows the refit some
// fortyfold: the refit check then skips, and `make test` runs it again
// without -race.
const raceEnabled = true
