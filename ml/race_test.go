//go:build race

package ml

// raceEnabled is true when the tests run under the race detector, which
// slows numerics some fortyfold: the full-data backtest then skips, and
// `make test` runs it again without -race.
const raceEnabled = true
