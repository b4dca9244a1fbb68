// Package obsqratest holds the helpers the module's tests share: a clock
// the test moves, a buffer that concurrent goroutines may log to, golden
// files rewritten by -update, and the switch that makes the shared data
// required. It is for tests only: no production package imports it.
//
// The fake Starknet node is starknet/starknettest, next to the client it
// fakes.
package obsqratest
