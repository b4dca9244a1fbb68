package ratelimit

// SetMaxKeys sets the bound of the budgets l keeps in memory.
func SetMaxKeys(l *Limiter, n int) { l.maxKeys = n }
