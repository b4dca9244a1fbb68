//go:build !linux

package storetest

import "testing"

// Cluster is a throwaway PostgreSQL server (see cluster.go). Freezing one
// needs Linux (signals to the postmaster's processes, found through
// /proc); elsewhere StartCluster skips the test.
type Cluster struct{}

// StartCluster skips the test: throwaway clusters need Linux.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	t.Skip("storetest: throwaway PostgreSQL clusters need Linux")
	return nil
}

// URL is not reached: StartCluster skips.
func (c *Cluster) URL() string { return "" }

// Start is not reached: StartCluster skips.
func (c *Cluster) Start() {}

// Stop is not reached: StartCluster skips.
func (c *Cluster) Stop() {}

// Freeze is not reached: StartCluster skips.
func (c *Cluster) Freeze() {}

// Thaw is not reached: StartCluster skips.
func (c *Cluster) Thaw() {}

// FrozenPIDs is not reached: StartCluster skips.
func (c *Cluster) FrozenPIDs() []int { return nil }
