// Package obsqratest holds the helpers the module's tests share: a clock
// the test moves, a buffer that concurrent goroutines may log to, golden
// files rewritten by -update, journeys run as named steps, the check of an
// error's code and message, and the switch that makes the shared data
// required. It is for tests only: no production package imports it
// (imports_test.go lists it for no production package).
//
// The fake Starknet node is starknet/starknettest, next to the client it
// fakes.
package obsqratest
