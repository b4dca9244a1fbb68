// Package ml is Obsqra's numerics: the on-chain RiskEngine's parity formulas,
// daily-series forecasting with calibrated confidence, the allocation
// optimiser and rebalancing, and walk-forward evaluation.
//
// It is pure: inputs in, numbers out. Nothing here does I/O, reads the clock
// or keeps global state, and randomness comes only from a seed argument, so
// every figure Obsqra publishes can be recomputed bit for bit from its
// recorded inputs.
package ml
