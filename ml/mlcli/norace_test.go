//go:build !race

package mlcli

const raceEnabled = false
