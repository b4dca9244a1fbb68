// Package mlcli is the `obsqra ml` subcommand: it lets anyone check the
// numbers of package ml from a shell. Line commands (score, allocate,
// verify, optimize) answer one JSON object per input line, with an error
// line for a bad input and the rest going on; file commands (forecast,
// backtest, strategies) read a CSV of Aave V3 daily rates and write their
// forecasts and backtests as JSON. cmd/obsqra only hands it the arguments
// and the standard streams.
package mlcli
